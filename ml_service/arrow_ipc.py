"""Arrow IPC as the service reads it: checks on what a client sent, and its layouts made plain.

Encoding tables and cutting uploads into pieces is the client's side of the wire:
mlops_client.ipc, which the tests and benchmarks use too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ml_service.errors import InvalidArgument, ResourceExhausted


def check_names(schema: pa.Schema, field: str) -> None:
    """Refuse column names that are not UTF-8; Arrow decodes them only when asked."""
    try:
        schema.names  # noqa: B018 - decoding the names is the check
    except UnicodeDecodeError as exc:
        raise InvalidArgument.field(field, "column names must be valid UTF-8") from exc


def check_stream_size(data: bytes | pa.Buffer, most: int, field: str, what: str) -> int:
    """Refuse a stream whose reading would hold more than `most` bytes; return what it holds.

    Two things make an IPC stream larger once read than the bytes sent. LZ4/ZSTD body
    compression lets a few kilobytes declare gigabytes, and Arrow's reader allocates each
    buffer's declared size as it reads it. A dictionary delta makes a new dictionary, the
    old one and the delta joined, which every later batch holds: n one-value deltas, each
    followed by a batch, hold n * n / 2 values (3,000 deltas of 1 kB: 4 MB sent, 5 GB read).
    Both are counted here from the messages' metadata and the first 8 bytes of each
    compressed buffer, before anything is read. `what` names the limit in the refusal.
    """
    view = memoryview(data)
    total = 0
    dictionaries: dict[int, int] = {}  # each dictionary's size, by id, as read so far
    compressed = deltas = False
    try:
        for header_type, body, body_length, header in _messages(view):
            if header_type not in (_DICTIONARY_BATCH, _RECORD_BATCH):
                continue
            batch = header if header_type == _RECORD_BATCH else _child(view, header, 1)
            size = body_length
            if batch is not None and _field(view, batch, 3) is not None:  # BodyCompression
                compressed = True
                size = _decompressed_length(view, body, body_length, batch)
            if header_type == _DICTIONARY_BATCH:
                key = _scalar(view, header, 0, "<q", 0)
                if _scalar(view, header, 2, "<B", 0):  # isDelta
                    deltas = True
                    size += dictionaries.get(key, 0)
                dictionaries[key] = size
            total += size
            if total > most:
                grown = (
                    "dictionary deltas make dictionaries of"
                    if deltas
                    else "compressed buffers decompress to"
                    if compressed
                    else "messages hold"
                )
                raise ResourceExhausted(
                    f"the Arrow IPC stream's {grown} more than {most:,} bytes, {what}"
                )
    except (struct.error, _Malformed):
        raise InvalidArgument.field(
            field, "not a valid Arrow IPC stream: a message's metadata cannot be read"
        ) from None
    return total


def schema_width(data: bytes | pa.Buffer) -> int | None:
    """The number of columns a stream's schema declares, read from its metadata.

    Arrow builds every field as it opens a stream, ~1 kB each, so a wide schema is costly
    before anything can refuse it. None when the first message is no readable schema.
    """
    view = memoryview(data)
    try:
        for header_type, _, _, header in _messages(view):
            if header_type != _SCHEMA:
                return None
            fields = _child_position(view, header, 1)
            return 0 if fields is None else int(_unpack(view, fields, "<I")[0])
    except (struct.error, _Malformed):
        return None
    return None


class _Malformed(Exception):
    pass


# Message header types (Arrow's Message.fbs).
_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
# A flatbuffer table: its position in the stream, its vtable's position, the vtable's size.
_Table = tuple[int, int, int]


def _messages(view: memoryview) -> Iterator[tuple[int, int, int, _Table]]:
    """Yield each message's header type, body position and length, and header table.

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
        header = _child(view, message, 2)
        if header is not None:
            yield header_type, body, body_length, header
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


def check_decoded_size(table: pa.Table, most: int, what: str, held: int) -> None:
    """Refuse a table whose columns would decode to more than `most` bytes.

    Three layouts hold more than the bytes they take: a run-end encoded column repeats a
    value over any number of rows, a dictionary's codes repeat its values, and string_view
    rows may all point at the same bytes. Each is decoded to plain values on its way to a
    model (plain_types, or a dictionary of text read as numbers or holding a value twice),
    so 400 kB could ask for 500 MB. Sizes come from run ends, codes and views, never by
    decoding; plain columns are skipped, being no larger than what was sent. `held` is what
    the stream held once read (check_stream_size): no value decodes to more than that.
    """
    expanding = [i for i, kind in enumerate(table.schema.types) if kind.id in _EXPANDING]
    # Bounds first: every value at most what the stream held (a one-row call: no work), then
    # each column's longest value, which settles a dictionary column's rows without a pass
    # over its codes (a 64k-row batch of adult's eight: 0.14 ms, where exact took 1.2).
    if not expanding or table.num_rows * len(expanding) * (held + 8) <= most:
        return
    if sum(_rows_times_longest(c) for i in expanding for c in table.column(i).chunks) <= most:
        return
    total = 0.0
    for position in expanding:
        total += sum(_decoded_bytes(chunk) for chunk in table.column(position).chunks)
        if total > most:
            arrow_type = table.schema.types[position]
            raise ResourceExhausted(
                f"column '{table.schema.names[position]}' is {_layout(arrow_type)} that decodes"
                f" to more than {most:,} bytes (with the columns before it), {what}"
            )


def _rows_times_longest(array: pa.Array) -> float:
    if pa.types.is_dictionary(array.type):
        widths = _widths(array.dictionary)
        longest = _fixed_width(array.type) if widths is None else float(widths.max(initial=0.0))
        return float(len(array)) * (longest + 8)
    return _decoded_bytes(array)


# Type ids of the layouts above: comparing ids keeps the check of a plain schema cheap.
_EXPANDING = frozenset(
    arrow_type.id
    for arrow_type in (
        pa.run_end_encoded(pa.int32(), pa.null()),
        pa.dictionary(pa.int32(), pa.null()),
        pa.string_view(),
        pa.binary_view(),
    )
)


def _layout(arrow_type: pa.DataType) -> str:
    if pa.types.is_run_end_encoded(arrow_type):
        return "a run-end encoded column"
    if pa.types.is_dictionary(arrow_type):
        return "a dictionary-encoded column"
    return f"a {arrow_type} column"


def _decoded_bytes(array: pa.Array) -> float:
    if pa.types.is_run_end_encoded(array.type):
        first = array.find_physical_offset()
        count = array.find_physical_length()
        ends = array.run_ends.to_numpy()[first : first + count].astype(np.float64)
        runs = np.diff(np.minimum(ends - array.offset, len(array)), prepend=0.0)
        values = array.values.slice(first, count)
        widths = _widths(values)
        if widths is None:
            return float(len(array)) * _fixed_width(values.type)
        return float(np.dot(runs, widths))
    if pa.types.is_dictionary(array.type) and not _variable_width(array.type.value_type):
        return 0.0  # fixed-width values: a few times the codes sent at most
    widths = _widths(array)
    return 0.0 if widths is None else float(widths.sum())


def _variable_width(arrow_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_string_view(arrow_type)
        or pa.types.is_binary_view(arrow_type)
    )


def _widths(array: pa.Array) -> npt.NDArray[np.float64] | None:
    """Bytes each value of a variable-width array decodes to; None for fixed widths."""
    kind = array.type
    if not len(array):  # its buffers may be absent
        return np.zeros(0) if _variable_width(kind) else None
    if pa.types.is_dictionary(kind):
        widths = _widths(array.dictionary)
        if widths is None:
            return None
        if not len(widths):
            return np.zeros(len(array))
        codes = array.indices
        decoded: npt.NDArray[np.float64] = widths[codes.fill_null(0).to_numpy()]
        if codes.null_count:
            decoded[~codes.is_valid().to_numpy(zero_copy_only=False)] = 0.0
        return decoded
    if pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        # A view is 16 bytes, its first four the value's length.
        views = np.frombuffer(
            array.buffers()[1], np.int32, count=4 * len(array), offset=16 * array.offset
        )
        return views[0::4].astype(np.float64)
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        offset_type: type[np.signedinteger] = np.int32
    elif pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        offset_type = np.int64
    else:
        return None
    size = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(
        array.buffers()[1], offset_type, count=len(array) + 1, offset=size * array.offset
    )
    return np.diff(offsets).astype(np.float64)


def _fixed_width(arrow_type: pa.DataType) -> int:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    try:
        return max(int(arrow_type.bit_width) // 8, 1)
    except ValueError:  # nested values, which predict and training refuse by name
        return 1


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
