"""Identifiers: how the service makes them and what it accepts from clients."""

from __future__ import annotations

import re
import secrets

from mlops import names

from ml_service.errors import InvalidArgument

# The same alphabet the store allows in artifact paths: no separators, no climbing out.
_ID = re.compile(names.ID_PATTERN)


def new_id(prefix: str) -> str:
    """Return a fresh random identifier such as "m-3f2a9c0d1e4b"."""
    return f"{prefix}-{secrets.token_hex(6)}"


def check_id(value: str, field: str) -> str:
    """Return the id, or raise naming the field when it is empty or malformed."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not _ID.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise InvalidArgument.field(
            field,
            f"{shown!r} is not an id: use 1 to 128 letters, digits, '.', '_' or '-'",
        )
    return value
