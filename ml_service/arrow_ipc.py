"""Arrow IPC as the service reads it: checks on what a client sent.

Encoding tables and cutting uploads into pieces is the client's side of the wire:
mlops_client.ipc, which the tests and benchmarks use too.
"""

from __future__ import annotations

import pyarrow as pa

from ml_service.errors import InvalidArgument


def check_names(schema: pa.Schema, field: str) -> None:
    """Refuse column names that are not UTF-8; Arrow decodes them only when asked."""
    try:
        schema.names  # noqa: B018 - decoding the names is the check
    except UnicodeDecodeError as exc:
        raise InvalidArgument.field(field, "column names must be valid UTF-8") from exc
