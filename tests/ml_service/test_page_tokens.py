"""Forged page tokens: out-of-range keys are the caller's mistake, never an internal error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import training_service_pb2 as ts

from ml_service.store.paging import encode_token
from tests.conftest import ServiceThread
from tests.ml_service.helpers import Client, violations

# Keys SQLite cannot hold (above int64) and keys no list ever hands out (negative).
FORGED_KEYS = [2**63, 2**64, 10**40, -1]


def lists(client: Client) -> dict[str, tuple[str, Callable[[str], Any]]]:
    """Each list RPC with the scope its tokens carry."""
    return {
        "models": (
            "models",
            lambda t: client.models.ListModels(ms.ListModelsRequest(page_token=t), timeout=10),
        ),
        "versions": (
            "versions/m-1",
            lambda t: client.models.ListModelVersions(
                ms.ListModelVersionsRequest(model_id="m-1", page_token=t), timeout=10
            ),
        ),
        "jobs": (
            "jobs/",
            lambda t: client.training.ListTrainingJobs(
                ts.ListTrainingJobsRequest(page_token=t), timeout=10
            ),
        ),
    }


@pytest.mark.parametrize("key", FORGED_KEYS)
@pytest.mark.parametrize("rpc", ["models", "versions", "jobs"])
def test_a_forged_out_of_range_token_is_invalid_argument(
    channel: grpc.Channel, grpc_service: ServiceThread, rpc: str, key: int
) -> None:
    client = Client(channel)
    scope, call = lists(client)[rpc]
    with pytest.raises(grpc.RpcError) as caught:
        call(encode_token(scope, key))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in violations(caught.value)
    # The service keeps answering, and a real first page still works.
    client.models.ListModels(ms.ListModelsRequest(), timeout=10)
