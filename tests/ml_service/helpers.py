"""Client-side helpers for tests: upload tables, watch jobs, read rich errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.csv as pacsv
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlops.v1 import model_service_pb2_grpc, training_service_pb2_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from mlops_client.ipc import table_chunks


def read_csv(path: Path) -> pa.Table:
    """Read a dataset CSV the way users send it: empty fields are missing values."""
    return pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    )


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    """Build a Struct of hyperparameters."""
    out = struct_pb2.Struct()
    out.update(values)
    return out


class Client:
    """Typed stubs over one channel, with upload and watch helpers."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)
        self.training = training_service_pb2_grpc.TrainingServiceStub(channel)

    def create_job(
        self, table: pa.Table | None, chunk_bytes: int = 256 * 1024, **spec: Any
    ) -> pb.TrainingJob:
        """Upload a table with a spec and return the queued job."""
        if "hyperparameters" in spec:
            spec["hyperparameters"] = struct(spec["hyperparameters"])
        first = ts.CreateTrainingJobRequest(spec=pb.TrainingJobSpec(**spec))

        def messages() -> Iterator[ts.CreateTrainingJobRequest]:
            yield first
            if table is not None:
                for piece in table_chunks(table, chunk_bytes):
                    yield ts.CreateTrainingJobRequest(arrow_chunk=piece)

        return self.training.CreateTrainingJob(messages(), timeout=120).job

    def retrain(self, table: pa.Table | None = None, **spec: Any) -> pb.TrainingJob:
        """Start a retrain, optionally with new data."""
        if "hyperparameters" in spec:
            spec["hyperparameters"] = struct(spec["hyperparameters"])
        first = ts.RetrainModelRequest(spec=pb.RetrainSpec(**spec))

        def messages() -> Iterator[ts.RetrainModelRequest]:
            yield first
            if table is not None:
                for piece in table_chunks(table):
                    yield ts.RetrainModelRequest(arrow_chunk=piece)

        return self.training.RetrainModel(messages(), timeout=120).job

    def watch(self, job_id: str, timeout: float = 300) -> list[pb.TrainingJob]:
        """Collect every update of a job until it ends."""
        request = ts.WatchTrainingJobRequest(job_id=job_id)
        return [u.job for u in self.training.WatchTrainingJob(request, timeout=timeout)]

    def train(self, table: pa.Table, **spec: Any) -> pb.TrainingJob:
        """Train to the end and return the final job (with its result)."""
        job = self.create_job(table, **spec)
        return self.watch(job.job_id)[-1]


def violations(error: grpc.RpcError) -> dict[str, str]:
    """Return the BadRequest field violations of an error, by field."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error}"
    out: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            out.update({v.field: v.description for v in bad_request.field_violations})
    return out


def until(check: Any, seconds: float) -> float:
    """Poll `check` until it is true; return how long it took, fail after `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started
