"""Training uploads: the spec message and the data as consecutive pieces of one IPC stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from google.protobuf import struct_pb2
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from mlops_client.files import data_file, is_parquet, parquet_batches, parquet_file, read_table
from mlops_client.frames import column_name, frame_table, is_frame, not_a_table
from mlops_client.ipc import CHUNK_BYTES, ipc_chunks
from mlops_client.results import FEATURE_TYPES

Data = Any  # a pandas DataFrame, an Arrow Table or RecordBatch, or a CSV/Parquet path
BATCH_ROWS = 64 * 1024


@dataclass(frozen=True)
class Resources:
    """What one training job reserves where it trains; None takes the service's default.

    The service refuses values that are not positive or exceed its limits
    (MLOPS_MAX_JOB_CPUS, MLOPS_MAX_JOB_MEMORY_MB), and memory unless it trains on Ray.
    """

    #: CPUs to reserve; the fit's threads are this rounded up. Ray takes fractions.
    cpus: float | None = None
    #: Memory to reserve, in MiB.
    memory_mb: int | None = None


def resources_message(resources: Resources) -> pb.TrainingResources:
    """Build the TrainingResources message, leaving out what was not given."""
    if not has_field(pb.TrainingJobSpec, "resources"):
        raise ValueError("this client's contract has no training resources; upgrade it")
    message = pb.TrainingResources()
    if resources.cpus is not None:
        message.cpus = resources.cpus
    if resources.memory_mb is not None:
        if resources.memory_mb < 0:
            # The field is unsigned: the service would say the same of 0.
            raise ValueError(f"resources.memory_mb must be positive, got {resources.memory_mb}")
        message.memory_mb = resources.memory_mb
    return message


def struct(values: Mapping[str, Any] | None) -> struct_pb2.Struct:
    """Build a Struct of hyperparameters."""
    out = struct_pb2.Struct()
    out.update(dict(values or {}))
    return out


def has_field(message: type[Any], name: str) -> bool:
    """Whether a generated message declares a field, so newer fields are set only when known."""
    return name in message.DESCRIPTOR.fields_by_name


def feature_type_values(types: Mapping[Any, str] | None) -> dict[str, int]:
    """The spec's feature_types from {column: "numeric" | "categorical"}."""
    values: dict[str, int] = {}
    for column, name in (types or {}).items():
        if name not in FEATURE_TYPES:
            raise ValueError(
                f"the type of column {column!r} must be 'numeric' or 'categorical', not {name!r}"
            )
        values[column_name(column)] = FEATURE_TYPES[name]
    return values


def training_spec(
    kind: str,
    target: str,
    hyperparameters: Mapping[str, Any] | None,
    allow_many_classes: bool,
    **options: Any,
) -> pb.TrainingJobSpec:
    """Build a TrainingJobSpec, leaving out options that were not given."""
    spec = pb.TrainingJobSpec(
        kind=kind,
        target_column=target,
        hyperparameters=struct(hyperparameters),
        **{k: v for k, v in options.items() if v not in (None, "", (), {})},
    )
    if allow_many_classes:
        if not has_field(pb.TrainingJobSpec, "allow_many_classes"):
            raise ValueError("this client's contract has no allow_many_classes; upgrade it")
        setattr(spec, "allow_many_classes", True)  # noqa: B010 - absent from older stubs
    return spec


def data_pieces(data: Data, chunk_bytes: int = CHUNK_BYTES) -> Callable[[], Iterator[bytes]]:
    """Return a factory of the data's IPC pieces, so a refused attempt can start over."""
    if isinstance(data, str | Path):
        path = data_file(data)
        if is_parquet(path):
            parquet_file(path)  # one that cannot be read is refused before the call

            def parquet() -> Iterator[bytes]:
                reader = parquet_file(path)
                batches = parquet_batches(path, reader, BATCH_ROWS)
                return ipc_chunks(reader.schema_arrow, batches, chunk_bytes)

            return parquet
        # A CSV is read whole so each column's type is inferred from every row, as the
        # service would; the service holds the whole table in memory to train anyway.
        data = read_table(path)
    table = _as_table(data)
    return lambda: ipc_chunks(table.schema, table.to_batches(BATCH_ROWS), chunk_bytes)


def _as_table(data: Data) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if is_frame(data):
        return frame_table(data)
    raise not_a_table(data, "a pandas DataFrame, an Arrow table or batch, or a file path")


def create_messages(
    spec: pb.TrainingJobSpec, pieces: Callable[[], Iterator[bytes]]
) -> Callable[[], Iterator[ts.CreateTrainingJobRequest]]:
    """Return a factory of the CreateTrainingJob messages: the spec, then the pieces."""

    def messages() -> Iterator[ts.CreateTrainingJobRequest]:
        yield ts.CreateTrainingJobRequest(spec=spec)
        for piece in pieces():
            yield ts.CreateTrainingJobRequest(arrow_chunk=piece)

    return messages


def retrain_messages(
    spec: pb.RetrainSpec, pieces: Callable[[], Iterator[bytes]] | None
) -> Callable[[], Iterator[ts.RetrainModelRequest]]:
    """Return a factory of the RetrainModel messages: the spec, then any pieces."""

    def messages() -> Iterator[ts.RetrainModelRequest]:
        yield ts.RetrainModelRequest(spec=spec)
        for piece in pieces() if pieces else ():
            yield ts.RetrainModelRequest(arrow_chunk=piece)

    return messages
