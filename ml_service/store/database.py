"""Open the metadata database (SQLite or PostgreSQL), keep its schema at the Alembic head,
and hand out its connections."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import QueuePool

from ml_service.store import legacy
from ml_service.store.outages import watch_database

log = logging.getLogger(__name__)

SCRIPTS = "ml_service.store:migrations"
# Any constant will do: replicas that start together take turns upgrading the schema.
_MIGRATION_LOCK = 0x6D6C6F7073
CONNECT_TIMEOUT_SECONDS = 5


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


def sqlite_url(path: Path) -> str:
    """Return the URL of the embedded SQLite database at `path`."""
    return f"sqlite:///{path}"


def create_engine(url: str) -> sa.Engine:
    """Make an engine with the store's settings for SQLite or PostgreSQL."""
    if url.startswith("postgresql://"):
        # psycopg 3, not the SQLAlchemy default psycopg2, which is not installed.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        # pre_ping: a replica outlives database restarts and failovers without stale sockets.
        # connect_timeout: a database host that drops packets is unavailable within seconds,
        # not after the kernel's minutes-long TCP timeout.
        engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_size=8,
            max_overflow=8,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        watch_database(engine)
        return engine
    # check_same_thread=False: calls arrive from asyncio.to_thread workers; Metadata
    # serialises them with its own lock, as SQLite allows one writer anyway.
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own implicit transactions are off; `_sqlite_begin` starts each one.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and a
    # commit is our promise that a model version exists. It costs one fsync per commit, and
    # the store commits a handful of rows per training job.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front, so reads inside a transaction cannot go stale.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def db_now(dialect: str) -> sa.ColumnElement[Any]:
    """The database's current time in epoch seconds."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", sa.func.clock_timestamp())
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


def alembic_config(conn: sa.Connection | None = None) -> Config:
    """Return the Alembic configuration of the shipped migrations, bound to `conn`."""
    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """Return the newest schema revision this release knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """Return the database's schema revision; None for a database without one."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> str:
    """Bring the schema to the head revision and return it; refuse a newer database."""
    # Before our own transaction: the old steps run on a connection of their own.
    database = engine.url.database
    legacy_db = engine.dialect.name == "sqlite" and bool(database)
    legacy_db = legacy_db and legacy.finish_legacy_steps(Path(str(database)))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        config = alembic_config(conn)
        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        if current is not None and current not in known:
            raise SchemaTooNew(
                f"the metadata database has schema revision {current!r}, newer than this "
                f"release knows (up to {head_revision()!r}); run a release at least as new"
            )
        if current is None and legacy_db:
            # Made before Alembic: its tables already are revision 0001, so they are kept.
            command.stamp(config, "0001")
            log.info("stamped a pre-Alembic metadata database as schema revision 0001")
        command.upgrade(config, "head")
        if legacy_db:
            # A release from before Alembic reads only this pragma: left at its step count, it
            # would take the upgraded database for its own and write rows without the later
            # revisions' columns. At 0 it tries to create its tables and stops before writing
            # anything, while releases since Alembic ignore the pragma and read the revision.
            conn.exec_driver_sql("PRAGMA user_version=0")
    return head_revision()


class Database:
    """An open metadata database: its engine, schema at head, and connections to use."""

    def __init__(self, target: Path | str) -> None:
        """Open a database: a Path is an embedded SQLite file, a str a SQLAlchemy URL."""
        url = sqlite_url(target) if isinstance(target, Path) else target
        self.engine = create_engine(url)
        try:
            upgrade(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self.dialect = self.engine.dialect.name
        # SQLite allows one writer anyway and our queries are short: one lock serialises
        # this process's calls. PostgreSQL takes them concurrently from its pool.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            # A call still running in a worker thread (a heartbeat cancelled mid-query) hands
            # its connection back shortly; disposing first would leave that connection to the
            # garbage collector, unclosed.
            pool = self.engine.pool
            deadline = time.monotonic() + 2.0
            while isinstance(pool, QueuePool) and pool.checkedout() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.engine.dispose()

    def ping(self) -> None:
        """Run the cheapest query, to learn whether the database answers."""
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._lock, self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._lock, self.engine.connect() as conn:
            yield conn
