"""Tell an unreachable database or object store apart from other failures, and name it.

A lost connection surfaces as a driver's or pyarrow's error deep inside a call; left alone
it would reach a client as INTERNAL. Here it becomes `DatabaseUnavailable` or
`ObjectStoreUnavailable` (both UNAVAILABLE), whose message names the database or bucket in
the user's words and never a library's source path; the driver's own words go to the log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from ml_service.store.errors import DatabaseUnavailable, ObjectStoreUnavailable
from ml_service.store.space import is_no_space

# SQLSTATEs of a server that is going away or not accepting connections yet; class 08 is
# every connection exception. Lock, deadlock and serialisation failures are left alone:
# the database answered, so retrying later is not what the user needs to hear.
_GOING_AWAY = frozenset({"57P01", "57P02", "57P03"})


def database_name(url: sa.URL) -> str:
    """Name a PostgreSQL database for people: database and address, never the password."""
    return f"the metadata database (PostgreSQL {url.database!r} at {url.host}:{url.port or 5432})"


def first_line(error: BaseException) -> str:
    """The first line of an error's text, without a driver's "connection failed:" prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.removeprefix("connection failed: ")


def watch_database(engine: sa.Engine) -> None:
    """Make every lost or refused connection of `engine` raise DatabaseUnavailable."""
    if engine.dialect.name == "sqlite":
        return  # a local file: nothing to reach, and its errors are the disk's
    name = database_name(engine.url)

    @sa.event.listens_for(engine, "handle_error")
    def _unreachable(context: sa.engine.ExceptionContext) -> None:
        if context.is_pre_ping:
            return  # the pool throws the stale connection away and connects anew
        original = context.original_exception
        if is_no_space(original):
            return
        wrapped = context.sqlalchemy_exception
        if not isinstance(wrapped, sa.exc.OperationalError | sa.exc.InterfaceError):
            return
        sqlstate = getattr(original, "sqlstate", None)
        lost = (
            context.is_disconnect
            or sqlstate is None
            or sqlstate.startswith("08")
            or sqlstate in _GOING_AWAY
        )
        if lost:
            raise DatabaseUnavailable(
                f"{name} is unreachable; retry shortly", first_line(original)
            ) from original


@contextlib.contextmanager
def object_store_reached(name: str) -> Iterator[None]:
    """Turn a failed call to the object store `name` (e.g. "s3://bucket/prefix") into
    ObjectStoreUnavailable; a missing key stays FileNotFoundError."""
    try:
        yield
    except OSError as exc:
        # pyarrow reports the remote side's failures without an errno; an errno is the local
        # disk's (a missing key is FileNotFoundError, a full scratch disk ENOSPC).
        if exc.errno is not None or isinstance(exc, FileNotFoundError):
            raise
        raise ObjectStoreUnavailable(
            f"the object store {name} is unreachable; retry shortly", first_line(exc)
        ) from exc
