"""The pre-Alembic schema steps (PRAGMA user_version), kept to bring old databases up to date.

A SQLite database from before Alembic carries its step count in PRAGMA user_version. Opening
one runs the steps it lacks here, then Alembic stamps it with revision 0001, which is the
schema these steps end at. Nothing new goes here: new changes are Alembic revisions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Each entry upgrades the schema by one step; PRAGMA user_version counts the steps applied.
# Append new steps, never edit old ones: databases in the field have already run them.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # seq orders models newest first and survives clock changes; ids come from the caller.
        """CREATE TABLE models (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            model_id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL
        ) STRICT""",
        # Outlives its model so that a version number is never handed out twice.
        """CREATE TABLE version_counters (
            model_id TEXT PRIMARY KEY,
            last_version INTEGER NOT NULL
        ) STRICT""",
        """CREATE TABLE versions (
            model_id TEXT NOT NULL REFERENCES models(model_id),
            version INTEGER NOT NULL,
            kind TEXT NOT NULL,
            hyperparameters TEXT NOT NULL,
            signature TEXT NOT NULL,
            metrics TEXT,
            feature_importance TEXT NOT NULL,
            train_rows INTEGER NOT NULL,
            holdout_rows INTEGER NOT NULL,
            timings TEXT NOT NULL,
            library_versions TEXT NOT NULL,
            created_at TEXT NOT NULL,
            artifact_key TEXT NOT NULL UNIQUE,
            artifact_sha256 TEXT NOT NULL,
            artifact_size INTEGER NOT NULL,
            parent_version INTEGER NOT NULL,
            dataset_digest TEXT NOT NULL,
            job_id TEXT NOT NULL,
            holdout_fraction REAL NOT NULL,
            seed INTEGER NOT NULL,
            PRIMARY KEY (model_id, version)
        ) STRICT""",
        # No foreign key to models: a job for a new model exists before its model does.
        """CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL UNIQUE,
            model_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            parent_version INTEGER NOT NULL,
            requested_hyperparameters TEXT NOT NULL,
            target_column TEXT NOT NULL,
            rows INTEGER NOT NULL,
            dataset_digest TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT,
            error_code TEXT,
            error_message TEXT,
            result_version INTEGER NOT NULL,
            name TEXT NOT NULL,
            description TEXT NOT NULL
        ) STRICT""",
        "CREATE INDEX jobs_by_model ON jobs(model_id, seq)",
        "CREATE INDEX jobs_by_state ON jobs(state)",
    ),
    # What the user should know about a fit (e.g. the solver did not converge), as JSON.
    ("ALTER TABLE versions ADD COLUMN notes TEXT NOT NULL DEFAULT '[]'",),
)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a block as one write transaction: commit on success, roll back on any error."""
    # IMMEDIATE takes the write lock up front, so reads inside the block cannot go stale.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def connect(path: Path) -> sqlite3.Connection:
    """Open the database at `path` with the store's settings and the latest schema."""
    # isolation_level=None: the module's implicit transactions are off; `transaction` is explicit.
    # check_same_thread=False: calls arrive from asyncio.to_thread workers; Metadata serialises
    # them with its own lock.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and a
        # commit is our promise that a model version exists. It costs one fsync per commit, and
        # the store commits a handful of rows per training job.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations the database has not seen yet, each in its own transaction."""
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"metadata schema version {current} is newer than this code knows "
            f"({len(MIGRATIONS)}); upgrade the service"
        )
    for number, statements in enumerate(MIGRATIONS[current:], start=current + 1):
        with transaction(conn):
            for statement in statements:
                conn.execute(statement)
            # PRAGMA takes no parameters; `number` is an int from enumerate.
            conn.execute(f"PRAGMA user_version={number}")


def finish_legacy_steps(path: Path) -> bool:
    """Run the old steps a pre-Alembic database lacks; tell whether it is such a database."""
    if not path.exists():
        return False
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        started: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if started == 0:
            return False
        migrate(conn)
        return True
    finally:
        conn.close()
