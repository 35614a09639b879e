"""The gateway's channel spreads calls over every address its target resolves to."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from fastapi.testclient import TestClient
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc

from rest_gateway import examples
from rest_gateway.app import create_app
from rest_gateway.backend import open_channel
from rest_gateway.config import GatewaySettings
from tests.backends import Shared
from tests.conftest import DATA_DIR
from tests.ml_service.helpers import Client, read_csv
from tests.ml_service.test_replicas import start_process, until
from tests.ml_service.test_shared_mode import predict
from tests.rest_gateway.conftest import gateway_settings


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


def predict_calls(log: Path) -> int:
    """How many Predict calls a service process logged (one JSON line per RPC)."""
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return sum(1 for line in lines if line.get("method") == "Predict")


def test_two_replica_processes_behind_the_gateway_act_as_one_service(
    shared: Shared, tmp_path: Path
) -> None:
    penguins_csv = (DATA_DIR / "penguins.csv").read_bytes()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        # Both at once: each takes seconds to import and open the shared store.
        with ThreadPoolExecutor(2) as pool:
            starts = [
                pool.submit(start_process, shared, tmp_path / name, log)
                for name, log in zip("ab", logs, strict=True)
            ]
        started.extend(start.result()[0] for start in starts if start.exception() is None)
        targets = [start.result()[1] for start in starts]
        settings = gateway_settings(f"ipv4:{','.join(targets)}")
        with TestClient(create_app(settings)) as http:
            # Trained through the gateway: the upload lands on one replica, and the wait may
            # follow the job from the other.
            trained = http.post(
                "/v1/jobs?wait=true",
                files={"file": ("penguins.csv", penguins_csv, "text/csv")},
                data={"kind": "logistic_regression", "target_column": "species"},
            )
            assert trained.status_code == 201, trained.text
            model_id = trained.json()["model_id"]
            url = f"/v1/models/{model_id}/predict"
            answers = [http.post(url, json=examples.PREDICT_REQUEST) for _ in range(6)]
            assert {a.status_code for a in answers} == {200}, answers[0].text
            assert len({a.content for a in answers}) == 1  # both replicas answer alike
            assert all(predict_calls(log) >= 1 for log in logs), "a replica took no Predict"

            # Deleted through A: B refuses the model within a second, and so does the gateway.
            with (
                grpc.insecure_channel(targets[0]) as to_a,
                grpc.insecure_channel(targets[1]) as to_b,
            ):
                rows = read_csv(DATA_DIR / "penguins.csv").drop(["species"]).slice(0, 3)
                assert predict(to_b, model_id, rows).num_rows == 3
                ms_grpc.ModelServiceStub(to_a).DeleteModel(ms.DeleteModelRequest(model_id=model_id))

                def refused() -> bool:
                    try:
                        predict(to_b, model_id, rows)
                    except grpc.RpcError as error:
                        return bool(error.code() == grpc.StatusCode.NOT_FOUND)
                    return False

                assert until(refused, 1.0) < 1.0
            gone = [http.post(url, json=examples.PREDICT_REQUEST) for _ in range(4)]
            assert {g.status_code for g in gone} == {404}, gone[0].text
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            assert proc.wait(30) == 0
