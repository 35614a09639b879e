"""Receive a training upload: Arrow IPC pieces to a scratch file, checked, stored as Parquet."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ml_service.arrow_ipc import (
    check_decoded_size,
    check_names,
    check_stream_size,
    plain_types,
    schema_width,
)
from ml_service.errors import FieldViolation, InvalidArgument, ResourceExhausted
from ml_service.store import Store
from ml_service.store.space import space_for

BUFFER_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class Dataset:
    """A stored training table: its digest, row count and schema."""

    digest: str
    rows: int
    schema: pa.Schema


async def receive(chunks: AsyncIterator[bytes], path: str, max_bytes: int) -> int:
    """Write the pieces to `path` as they arrive; refuse uploads over `max_bytes`."""
    total = 0
    pending: list[bytes] = []
    pending_size = 0
    # Opening a local scratch file is instant; a thread here could leak it on cancel.
    with space_for("the upload"), open(path, "wb") as out:  # noqa: ASYNC230
        async for chunk in chunks:
            total += len(chunk)
            if total > max_bytes:
                raise ResourceExhausted(
                    f"the training upload is over the limit of {max_bytes} bytes"
                )
            pending.append(chunk)
            pending_size += len(chunk)
            # Batch the disk writes so the event loop is not blocked once per small piece.
            if pending_size >= BUFFER_LIMIT:
                await asyncio.to_thread(out.writelines, pending)
                pending, pending_size = [], 0
        out.writelines(pending)
    return total


_NAMED_LIMIT = "the most one upload may hold (MLOPS_MAX_UPLOAD_BYTES)"


def read_ipc_file(path: str, max_rows: int, max_bytes: int, max_columns: int) -> pa.Table:
    """Read and fully validate an Arrow IPC stream from disk."""
    if os.path.getsize(path) == 0:
        raise InvalidArgument.field("arrow_chunk", "no training data was sent")
    try:
        with pa.memory_map(path) as source:
            stream = source.read_buffer()
            held = check_stream_size(stream, max_bytes, "arrow_chunk", _NAMED_LIMIT)
            # Checked again by check_columns, but here before Arrow builds the fields: a
            # 58 MB upload of 500,000 columns took 550 MB to be refused.
            width = schema_width(stream)
            if width is not None:
                _check_width(width, max_columns)
            reader = ipc.open_stream(stream)
            batches = []
            rows = 0
            for batch in reader:
                batch.validate(full=True)
                rows += batch.num_rows
                if rows > max_rows:
                    raise ResourceExhausted(
                        f"the training upload has more than {max_rows} rows, the limit"
                    )
                batches.append(batch)
            table = pa.Table.from_batches(batches, schema=reader.schema)
            check_names(table.schema, "arrow_chunk")
            check_decoded_size(table, max_bytes, _NAMED_LIMIT, held)
            return plain_types(table)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise InvalidArgument.field(
            "arrow_chunk", f"the data is not a valid Arrow IPC stream: {exc}"
        ) from exc


def check_columns(schema: pa.Schema, max_columns: int) -> None:
    """Refuse duplicate column names and more columns than the limit."""
    _check_width(len(schema), max_columns)
    names = schema.names
    if len(set(names)) != len(names):
        counts = collections.Counter(names)
        raise InvalidArgument.of(_twice(n, c) for n, c in sorted(counts.items()) if c > 1)


def _check_width(columns: int, max_columns: int) -> None:
    if columns > max_columns:
        raise ResourceExhausted(
            f"the training data has {columns} columns; the limit is {max_columns}"
        )


def _twice(name: str, count: int) -> FieldViolation:
    if name:
        return FieldViolation(f"columns.{name}", "appears more than once")
    # Most often the empty columns a spreadsheet exports past the last one it used.
    return FieldViolation(
        "columns",
        f"{count} columns have no name in the header; name them, or remove the empty ones",
    )


def store_table(store: Store, table: pa.Table, check: Callable[[pa.Table], None]) -> Dataset:
    """Check the table, write it as Parquet and move it into the store by digest."""
    check(table)
    path = store.scratch_path(".parquet")
    try:
        with space_for("the dataset"):
            pq.write_table(table, path, compression="zstd")
        digest = store.put_dataset(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        raise
    return Dataset(digest=digest, rows=table.num_rows, schema=table.schema)
