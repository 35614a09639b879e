"""Opaque page tokens for keyset pagination (AIP-158)."""

from __future__ import annotations

import base64
import binascii
import json

from ml_service.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Keys are SQLite integers; a forged key beyond them would fail inside the query instead.
MAX_KEY = 2**63 - 1


def page_limit(page_size: int) -> int:
    """Return the number of items a page holds: 0 means the default, big values are capped."""
    if page_size <= 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


def encode_token(scope: str, after: int) -> str:
    """Make the token that resumes the list named `scope` after key `after`."""
    raw = json.dumps({"s": scope, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str) -> int | None:
    """Return the key a token resumes after, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after = data["a"]
        token_scope = data["s"]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError):
        raise InvalidArgument.field("page_token", "is not a token this service issued") from None
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_KEY:
        raise InvalidArgument.field("page_token", "is not a token this service issued")
    if token_scope != scope:
        # A token from another list (or another model's list) would silently page wrongly.
        raise InvalidArgument.field("page_token", "does not belong to this list request")
    return after
