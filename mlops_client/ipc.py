"""Arrow IPC: encode tables for the service and cut uploads into pieces."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.ipc as ipc

CHUNK_BYTES = 1024 * 1024
# End-of-stream marker: a continuation token followed by a zero length.
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def to_ipc(data: pa.Table | pa.RecordBatch) -> bytes:
    """Serialise a table or batch as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, data.schema) as writer:
        writer.write(data)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


#: Most bytes a streamed batch's message holds: a quarter of the service's default limit
#: (MLOPS_MAX_MESSAGE_BYTES, 64 MiB), which a batch of a wide table's rows would pass.
STREAM_MESSAGE_BYTES = 16 * 1024 * 1024


def fitting_ipc(batch: pa.RecordBatch | pa.Table) -> Iterator[bytes]:
    """Encode a batch as one message, or as several of consecutive rows when it is too large."""
    encoded = to_ipc(batch)
    if len(encoded) <= STREAM_MESSAGE_BYTES or batch.num_rows < 2:
        yield encoded
        return
    parts = -(-len(encoded) // STREAM_MESSAGE_BYTES)
    rows = -(-batch.num_rows // parts)
    for first in range(0, batch.num_rows, rows):
        yield from fitting_ipc(batch.slice(first, rows))


def from_ipc(data: bytes) -> pa.Table:
    """Read one Arrow IPC stream into a table."""
    return ipc.open_stream(data).read_all()


def has_dictionaries(schema: pa.Schema) -> bool:
    """Whether a schema needs dictionary messages, which a bare batch message lacks."""
    return any(pa.types.is_dictionary(f.type) for f in schema)


class _Collector:
    """A write-only file that keeps what is written until it is taken."""

    closed = False

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def ipc_chunks(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """Encode batches as one IPC stream and yield it in pieces of about `chunk_bytes`."""
    sink = _Collector()
    writer = ipc.new_stream(pa.PythonFile(sink, mode="w"), schema)
    for batch in batches:
        writer.write_batch(batch)
        while len(sink.buffer) >= chunk_bytes:
            yield bytes(sink.buffer[:chunk_bytes])
            del sink.buffer[:chunk_bytes]
    writer.close()
    if sink.buffer:
        yield bytes(sink.buffer)


def table_chunks(table: pa.Table, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield a table as IPC pieces."""
    return ipc_chunks(table.schema, table.to_batches(max_chunksize=64 * 1024), chunk_bytes)
