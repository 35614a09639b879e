"""Arrow IPC as the service reads it: checks on what a client sent, and its layouts made plain.

Encoding tables and cutting uploads into pieces is the client's side of the wire:
mlops_client.ipc, which the tests and benchmarks use too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ml_service.errors import InvalidArgument, ResourceExhausted


def check_names(schema: pa.Schema, field: str) -> None:
    """Refuse column names that are not UTF-8; Arrow decodes them only when asked."""
    try:
        schema.names  # noqa: B018 - decoding the names is the check
    except UnicodeDecodeError as exc:
        raise InvalidArgument.field(field, "column names must be valid UTF-8") from exc


def check_decompressed_size(data: bytes | pa.Buffer, most: int, field: str, what: str) -> None:
    """Refuse a stream whose compressed buffers would decompress to more than `most` bytes.

    IPC's LZ4/ZSTD body compression lets a few kilobytes declare gigabytes, and Arrow's
    reader allocates each buffer's declared size as it reads it; the sizes are read here
    from the messages' metadata and the first 8 bytes of each buffer, before any of it is.
    `what` names the limit in the refusal. Uncompressed bodies are as large as the bytes
    sent, which the caller's own size limit already bounds.
    """
    view = memoryview(data)
    total = 0
    try:
        for body, body_length, batch in _batch_messages(view):
            if batch is None or _field(view, batch, 3) is None:  # no BodyCompression
                continue
            total += _decompressed_length(view, body, body_length, batch)
            if total > most:
                raise ResourceExhausted(
                    f"the Arrow IPC stream's compressed buffers decompress to more than "
                    f"{most:,} bytes, {what}"
                )
    except (struct.error, _Malformed):
        raise InvalidArgument.field(
            field, "not a valid Arrow IPC stream: a message's metadata cannot be read"
        ) from None


class _Malformed(Exception):
    pass


# Message header types (Arrow's Message.fbs).
_DICTIONARY_BATCH, _RECORD_BATCH = 2, 3
# A flatbuffer table: its position in the stream, its vtable's position, the vtable's size.
_Table = tuple[int, int, int]


def _batch_messages(view: memoryview) -> Iterator[tuple[int, int, _Table | None]]:
    """Yield each message's body position and length, and its RecordBatch table if any.

    Metadata is a flatbuffer (Arrow's Message.fbs); only the few fields needed are read.
    """
    position = 0
    while position + 4 <= len(view):
        (length,) = struct.unpack_from("<i", view, position)
        position += 4
        if length == -1:  # continuation marker, then the length (before it, the legacy form)
            if position + 4 > len(view):
                return
            (length,) = struct.unpack_from("<i", view, position)
            position += 4
        if length == 0:
            return
        if length < 0 or position + length > len(view):
            raise _Malformed
        message = _root(view, position)
        header_type = _scalar(view, message, 1, "<B", 0)
        body_length = _scalar(view, message, 3, "<q", 0)
        body = position + length
        if body_length < 0 or body + body_length > len(view):
            raise _Malformed
        batch = None
        if header_type in (_DICTIONARY_BATCH, _RECORD_BATCH):
            batch = _child(view, message, 2)
            if batch is not None and header_type == _DICTIONARY_BATCH:
                batch = _child(view, batch, 1)
        yield body, body_length, batch
        position = body + body_length


def _decompressed_length(view: memoryview, body: int, body_length: int, batch: _Table) -> int:
    vector = _child_position(view, batch, 2)
    if vector is None:
        return 0
    (count,) = _unpack(view, vector, "<I")
    total = 0
    for index in range(count):
        offset, length = _unpack(view, vector + 4 + 16 * index, "<qq")
        if length == 0:
            continue
        if offset < 0 or length < 8 or offset + length > body_length:
            raise _Malformed
        (declared,) = _unpack(view, body + offset, "<q")
        if declared < -1:
            raise _Malformed
        # -1: this buffer was left uncompressed, after its 8-byte length.
        total += length - 8 if declared == -1 else declared
    return total


def _unpack(view: memoryview, position: int, layout: str) -> tuple[int, ...]:
    if position < 0 or position + struct.calcsize(layout) > len(view):
        raise _Malformed
    return struct.unpack_from(layout, view, position)


def _root(view: memoryview, start: int) -> _Table:
    (position,) = _unpack(view, start, "<I")
    return _table(view, start + position)


def _table(view: memoryview, position: int) -> _Table:
    (back,) = _unpack(view, position, "<i")
    vtable = position - back
    (size,) = _unpack(view, vtable, "<H")
    return position, vtable, size


def _field(view: memoryview, table: _Table, index: int) -> int | None:
    """The position of a table's field, or None when the field is absent (its default)."""
    position, vtable, size = table
    slot = 4 + 2 * index
    if slot + 2 > size:
        return None
    (offset,) = _unpack(view, vtable + slot, "<H")
    return position + offset if offset else None


def _scalar(view: memoryview, table: _Table, index: int, layout: str, default: int) -> int:
    at = _field(view, table, index)
    return default if at is None else _unpack(view, at, layout)[0]


def _child_position(view: memoryview, table: _Table, index: int) -> int | None:
    at = _field(view, table, index)
    return None if at is None else at + _unpack(view, at, "<I")[0]


def _child(view: memoryview, table: _Table, index: int) -> _Table | None:
    at = _child_position(view, table, index)
    return None if at is None else _table(view, at)


def has_newer_layouts(schema: pa.Schema) -> bool:
    """Whether plain_types would change a table of this schema."""
    return any(_newer_layout(f.type) for f in schema)


def _newer_layout(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        return bool(pa.types.is_string_view(arrow_type.value_type))
    return bool(
        pa.types.is_run_end_encoded(arrow_type)
        or pa.types.is_string_view(arrow_type)
        or pa.types.is_float16(arrow_type)
    )


def plain_types(table: pa.Table) -> pa.Table:
    """The table with newer Arrow layouts of the same values in the types the service reads.

    Polars and DuckDB hand text over as string_view, half-precision pipelines float16, and
    some writers run-end encode repeated values; each is the same column to train on or
    predict, so it becomes large_string (a dictionary's values too), float32 or decoded.
    """
    for position, field in enumerate(table.schema):
        column = table.column(position)
        if pa.types.is_run_end_encoded(field.type):
            column = pc.run_end_decode(column)
        kind = column.type
        if pa.types.is_string_view(kind):
            column = column.cast(pa.large_string())
        elif pa.types.is_float16(kind):
            column = column.cast(pa.float32())
        elif pa.types.is_dictionary(kind) and pa.types.is_string_view(kind.value_type):
            column = column.cast(pa.dictionary(kind.index_type, pa.large_string()))
        if column.type != field.type:
            table = table.set_column(position, field.name, column)
    return table
