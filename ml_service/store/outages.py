"""Tell an unreachable database or object store apart from other failures, and name it.

A lost connection surfaces as a driver's or pyarrow's error deep inside a call; left alone
it would reach a client as INTERNAL. Here it becomes `DatabaseUnavailable` or
`ObjectStoreUnavailable` (both UNAVAILABLE), whose message names the database or bucket in
the user's words and never a library's source path; the driver's own words go to the log.

A server that answers but refuses the settings (no such database or bucket, a wrong user,
password or key) becomes `DatabaseRefused` or `ObjectStoreRefused`, whose message says what
was refused and what to correct: at start that ends the process, as waiting cannot mend it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import sqlalchemy as sa

from ml_service.store.errors import (
    DatabaseRefused,
    DatabaseUnavailable,
    ObjectStoreRefused,
    ObjectStoreUnavailable,
)
from ml_service.store.space import is_no_space

# SQLSTATEs of a server that is going away or not accepting connections yet; class 08 is
# every connection exception. Lock, deadlock and serialisation failures are left alone:
# the database answered, so retrying later is not what the user needs to hear.
_GOING_AWAY = frozenset({"57P01", "57P02", "57P03"})

# A server's refusal of the URL itself, and what to correct. libpq hands a failed connection
# over as text alone (psycopg's sqlstate and diag are empty then), in the server's words: an
# English-speaking server (lc_messages) is recognised; any other still counts as unreachable.
_DATABASE_REFUSALS = (
    (re.compile(r'database "[^"]*" does not exist'),
     "create it or correct the database name in MLOPS_DATABASE_URL"),
    (re.compile(r'role "[^"]*" does not exist|authentication failed for user|no password '
                r'supplied|role "[^"]*" is not permitted to log in'),
     "correct the user or password in MLOPS_DATABASE_URL"),
    (re.compile(r"no pg_hba\.conf entry for host|pg_hba\.conf rejects connection"),
     "allow this host and user in the server's pg_hba.conf, or correct MLOPS_DATABASE_URL"),
    (re.compile(r'permission denied for database "[^"]*"'),
     "grant the user CONNECT on it, or correct MLOPS_DATABASE_URL"),
)  # fmt: skip

# An object store's refusal of the bucket or the credentials, as pyarrow words it (the AWS
# SDK's error name; its own sentence for a bucket missing when it creates a directory).
_BUCKET_REFUSALS = (
    (re.compile(r"AWS Error NO_SUCH_BUCKET|Bucket '[^']*' not found"),
     "the bucket does not exist", "create it or correct the bucket in MLOPS_ARTIFACT_URI"),
    (re.compile(r"AWS Error INVALID_ACCESS_KEY_ID"),
     "the access key is not known", "correct AWS_ACCESS_KEY_ID"),
    (re.compile(r"AWS Error SIGNATURE_DOES_NOT_MATCH"),
     "the secret key does not match the access key", "correct AWS_SECRET_ACCESS_KEY"),
    (re.compile(r"AWS Error ACCESS_DENIED"),
     "access is denied", "correct the AWS credentials or grant them the bucket"),
)  # fmt: skip


def database_name(url: sa.URL) -> str:
    """Name a PostgreSQL database for people: database and address, never the password."""
    # No host in the URL is libpq's default: its local socket (or PGHOST), not a host None.
    where = f"{url.host}:{url.port or 5432}" if url.host else "the local socket or PGHOST"
    database = f" {url.database!r}" if url.database else ""
    return f"the metadata database (PostgreSQL{database} at {where})"


def first_line(error: BaseException) -> str:
    """The first line of an error's text, without a driver's "connection failed:" prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.removeprefix("connection failed: ")


def database_refusal(url: sa.URL, text: str) -> str | None:
    """Say in words why the server refused the URL's settings; None when it did not."""
    for pattern, correction in _DATABASE_REFUSALS:
        if pattern.search(text):
            words = text.splitlines()[0]
            # libpq's "connection to server at ..., port ... failed: FATAL:  <the server's>"
            words = re.split(r"FATAL:\s+|failed: (?:fe_sendauth: )?", words)[-1].strip()
            if url.password:
                words = words.replace(url.password, "***")
            return f"{database_name(url)} refused the connection: {words}; {correction}"
    return None


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
        refusal = database_refusal(engine.url, str(original)) if sqlstate is None else None
        if refusal is not None:
            raise DatabaseRefused(refusal, first_line(original)) from original
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
        for pattern, what, correction in _BUCKET_REFUSALS:
            if pattern.search(str(exc)):
                raise ObjectStoreRefused(
                    f"the object store {name} refused the settings: {what}; {correction}",
                    first_line(exc),
                ) from exc
        raise ObjectStoreUnavailable(
            f"the object store {name} is unreachable; retry shortly", first_line(exc)
        ) from exc
