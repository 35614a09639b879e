"""The gateway's channel spreads calls over every address its target resolves to."""

from __future__ import annotations

from typing import Any

import grpc
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc

from rest_gateway.backend import open_channel
from rest_gateway.config import GatewaySettings
from tests.conftest import DATA_DIR
from tests.ml_service.helpers import Client, read_csv


async def test_a_target_with_two_replicas_reaches_both(start_service: Any, tmp_path: Any) -> None:
    penguins = read_csv(DATA_DIR / "penguins.csv")
    # Two embedded services with separate stores: only A knows the model, so the answers
    # tell which replica took each call.
    a = start_service(tmp_path / "a")
    b = start_service(tmp_path / "b")
    with grpc.insecure_channel(a.target) as to_a:
        trained = Client(to_a).train(penguins, kind="logistic_regression", target_column="species")
    settings = GatewaySettings(grpc_target=f"ipv4:{a.target},{b.target}")
    channel = open_channel(settings)
    try:
        stub = ms_grpc.ModelServiceStub(channel)
        answers = set()
        for _ in range(8):
            try:
                await stub.GetModel(ms.GetModelRequest(model_id=trained.model_id), timeout=10)
                answers.add("a")
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                answers.add("b")
    finally:
        await channel.close()
    assert answers == {"a", "b"}
