"""Tell a full disk or quota apart from other write failures, and say what it stopped."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator

import sqlalchemy as sa

from ml_service.errors import NoSpace

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(error: BaseException) -> bool:
    """Tell whether an error means the filesystem or the user's quota is full."""
    if isinstance(error, OSError):
        return error.errno in NO_SPACE_ERRNOS
    if isinstance(error, sa.exc.DBAPIError) and isinstance(error.orig, BaseException):
        # SQLAlchemy wraps the driver's error; PostgreSQL says so with SQLSTATE 53100.
        return getattr(error.orig, "sqlstate", None) == "53100" or is_no_space(error.orig)
    # SQLite reports a full disk as its own code, not as an OSError.
    return (
        isinstance(error, sqlite3.OperationalError)
        and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )


@contextlib.contextmanager
def space_for(what: str) -> Iterator[None]:
    """Turn a full disk while writing `what` (e.g. "the upload") into NoSpace."""
    try:
        yield
    except (OSError, sqlite3.OperationalError, sa.exc.OperationalError) as exc:
        if is_no_space(exc):
            raise NoSpace(what) from exc
        raise
