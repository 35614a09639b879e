"""A call the client's deadline ends is counted and logged as DEADLINE_EXCEEDED, not CANCELLED."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pyarrow as pa
import pytest
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb
from prometheus_client import generate_latest

from ml_service.grpc.servicers import _split_upload
from mlops_client.ipc import table_chunks
from tests.ml_service.helpers import Client

DEADLINE = 0.5


def held_open(release: threading.Event, *first: Any) -> Iterator[Any]:
    """Send `first`, then nothing until released: the handler waits on the next message."""
    yield from first
    release.wait(30)


def counted(registry: Any, method: str, code: str) -> float:
    return (
        registry.get_sample_value("mlops_rpc_requests_total", {"method": method, "code": code})
        or 0.0
    )


def wait_for(registry: Any, method: str, seconds: float = 10) -> dict[str, float]:
    # The service counts the call once its task is cancelled, a moment after the client sees
    # the deadline pass.
    codes = ("DEADLINE_EXCEEDED", "CANCELLED")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = {code: counted(registry, method, code) for code in codes}
        if any(found.values()):
            return found
        time.sleep(0.05)
    raise AssertionError(generate_latest(registry).decode())


def test_a_stream_its_deadline_ends_is_deadline_exceeded(start_service: Any) -> None:
    service = start_service()
    registry = service.server.core.telemetry.metrics.registry
    release = threading.Event()
    with grpc.insecure_channel(service.target) as channel:
        stub = ps_grpc.PredictionServiceStub(channel)
        answers = stub.StreamPredict(held_open(release), timeout=DEADLINE)
        with pytest.raises(grpc.RpcError) as err:
            list(answers)
        release.set()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for(registry, "StreamPredict") == {"DEADLINE_EXCEEDED": 1, "CANCELLED": 0}


def test_a_unary_call_its_deadline_ends_is_deadline_exceeded(start_service: Any) -> None:
    service = start_service()
    registry = service.server.core.telemetry.metrics.registry
    release = threading.Event()
    spec = pb.TrainingJobSpec(kind="catboost", target_column="species")
    with grpc.insecure_channel(service.target) as channel:
        stub = ts_grpc.TrainingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateTrainingJob(
                held_open(release, ts.CreateTrainingJobRequest(spec=spec)), timeout=DEADLINE
            )
        release.set()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for(registry, "CreateTrainingJob") == {"DEADLINE_EXCEEDED": 1, "CANCELLED": 0}


def test_a_watch_its_deadline_ends_is_deadline_exceeded(
    start_service: Any, penguins: pa.Table
) -> None:
    service = start_service(max_concurrent_trainings=1)
    registry = service.server.core.telemetry.metrics.registry
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        slow = {"iterations": 10000, "learning_rate": 0.001}
        job = client.create_job(
            penguins, kind="catboost", target_column="species", hyperparameters=slow
        )
        request = ts.WatchTrainingJobRequest(job_id=job.job_id)
        with pytest.raises(grpc.RpcError) as err:
            list(client.training.WatchTrainingJob(request, timeout=DEADLINE))
        client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job.job_id))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for(registry, "WatchTrainingJob") == {"DEADLINE_EXCEEDED": 1, "CANCELLED": 0}


def test_an_upload_its_deadline_cuts_off_makes_no_job(
    start_service: Any, penguins: pa.Table
) -> None:
    # The rows sent before the deadline are a whole table (cut at a message's end): grpc.aio
    # ended the request stream as if the client had finished, and the service queued a job
    # on them while the client was told DEADLINE_EXCEEDED.
    service = start_service()
    registry = service.server.core.telemetry.metrics.registry
    release = threading.Event()
    spec = pb.TrainingJobSpec(kind="logistic_regression", target_column="species")
    pieces = [ts.CreateTrainingJobRequest(arrow_chunk=p) for p in table_chunks(penguins)]
    with grpc.insecure_channel(service.target) as channel:
        stub = ts_grpc.TrainingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateTrainingJob(
                held_open(release, ts.CreateTrainingJobRequest(spec=spec), *pieces),
                timeout=DEADLINE,
            )
        release.set()
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert wait_for(registry, "CreateTrainingJob") == {"DEADLINE_EXCEEDED": 1, "CANCELLED": 0}
        time.sleep(0.5)  # a job queued after the deadline would be listed by now
        listed = stub.ListTrainingJobs(ts.ListTrainingJobsRequest(), timeout=10)
    assert list(listed.jobs) == []


class PastItsDeadline:
    """The one thing the upload's reading asks of a call's context: its time left."""

    def time_remaining(self) -> float:
        return 0.0


def test_an_upload_stream_ended_past_its_deadline_ends_as_a_disconnect() -> None:
    # The race above is rare on loopback; this is what the guard does when it happens: the
    # rows read so far never reach the core as a finished upload.
    async def requests() -> AsyncIterator[ts.CreateTrainingJobRequest]:
        yield ts.CreateTrainingJobRequest(spec=pb.TrainingJobSpec(kind="catboost"))
        yield ts.CreateTrainingJobRequest(arrow_chunk=b"rows")

    async def read() -> list[bytes]:
        _, chunks = await _split_upload(requests(), PastItsDeadline())
        return [chunk async for chunk in chunks]

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(read())
