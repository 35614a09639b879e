"""Arrow IPC as the service reads it: checks on what a client sent, and its layouts made plain.

Encoding tables and cutting uploads into pieces is the client's side of the wire:
mlops_client.ipc, which the tests and benchmarks use too.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ml_service.errors import InvalidArgument


def check_names(schema: pa.Schema, field: str) -> None:
    """Refuse column names that are not UTF-8; Arrow decodes them only when asked."""
    try:
        schema.names  # noqa: B018 - decoding the names is the check
    except UnicodeDecodeError as exc:
        raise InvalidArgument.field(field, "column names must be valid UTF-8") from exc


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
