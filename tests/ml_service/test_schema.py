"""The metadata schema: Alembic revisions, databases made before Alembic, and the version check."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_service.domain import JobState
from ml_service.store import Store, legacy
from ml_service.store.database import (
    SchemaTooNew,
    alembic_config,
    create_engine,
    head_revision,
    sqlite_url,
)
from tests.ml_service.test_store import artifact, commit, draft, job

ROOT = Path(__file__).parents[2]


def sqlite_schema(path: Path) -> dict[str, object]:
    """Columns (name, type, not null, default, pk), indexes and SQL options of every table."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version' ORDER BY name"
            )
        ]
        schema: dict[str, object] = {}
        for table in tables:
            columns = [
                # A primary key is never null, whether or not NOT NULL is spelled out.
                (name, kind, bool(notnull) or bool(pk), default, pk)
                for _, name, kind, notnull, default, pk in conn.execute(
                    f"PRAGMA table_info({table})"
                )
            ]
            indexes = sorted(
                (unique, [c[2] for c in conn.execute(f"PRAGMA index_info('{name}')")])
                for _, name, unique, *_ in conn.execute(f"PRAGMA index_list({table})")
            )
            keys = sorted(conn.execute(f"PRAGMA foreign_key_list({table})").fetchall())
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[
                0
            ]
            options = ("STRICT" in sql, "AUTOINCREMENT" in sql)
            schema[table] = (columns, indexes, [k[2:5] for k in keys], options)
        return schema
    finally:
        conn.close()


def old_database(path: Path, steps: int = len(legacy.MIGRATIONS)) -> None:
    """Make a database the way the store did before Alembic, stopping after `steps` steps."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for number, statements in enumerate(legacy.MIGRATIONS[:steps], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
    finally:
        conn.close()


def test_the_first_revision_is_the_schema_the_old_code_made(tmp_path: Path) -> None:
    old_database(tmp_path / "old.sqlite")
    engine = create_engine(sqlite_url(tmp_path / "new.sqlite"))
    with engine.begin() as conn:
        from alembic import command

        config = alembic_config(conn)
        command.upgrade(config, "0001")
    engine.dispose()

    assert sqlite_schema(tmp_path / "new.sqlite") == sqlite_schema(tmp_path / "old.sqlite")


@pytest.mark.parametrize("steps", [1, 2], ids=["without-notes", "with-notes"])
def test_a_database_of_the_old_code_is_upgraded_in_place(tmp_path: Path, steps: int) -> None:
    old_database(tmp_path / "metadata.sqlite", steps)
    conn = sqlite3.connect(tmp_path / "metadata.sqlite")
    with conn:
        conn.execute(
            "INSERT INTO jobs (job_id, model_id, kind, state, parent_version,"
            " requested_hyperparameters, target_column, rows, dataset_digest, created_at,"
            " result_version, name, description) VALUES ('j-old', 'm-old', 'catboost',"
            " 'succeeded', 0, '{}', 'y', 10, ?, '2025-01-01T00:00:00+00:00', 1, 'n', 'd')",
            ("b" * 64,),
        )
    conn.close()

    with Store.open(tmp_path) as store:
        assert store.get_job("j-old").state is JobState.SUCCEEDED
        version = commit(store, draft(), artifact(store))
        assert store.get_version(version.model_id, 1).training.notes == (
            "the solver stopped early",
        )

    # Later revisions keep the tables STRICT, as the old code made them.
    schema = sqlite_schema(tmp_path / "metadata.sqlite")
    assert all(options == (True, True) for *_, options in [schema["jobs"], schema["models"]])
    engine = create_engine(sqlite_url(tmp_path / "metadata.sqlite"))
    with engine.connect() as conn2:
        revision = conn2.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert revision == head_revision()


@pytest.mark.parametrize("made_before_alembic", [True, False], ids=["upgraded", "new"])
def test_a_release_from_before_alembic_does_not_take_the_database_for_its_own(
    tmp_path: Path, made_before_alembic: bool
) -> None:
    path = tmp_path / "metadata.sqlite"
    if made_before_alembic:
        old_database(path)
    with Store.open(tmp_path) as store:
        version = commit(store, draft(), artifact(store))
    schema = sqlite_schema(path)

    # legacy.connect is how that release opened its database: it stopped short only at a
    # step count above its own; anything it knew it would have served and written to.
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        legacy.connect(path)

    assert sqlite_schema(path) == schema
    with Store.open(tmp_path) as store:
        assert store.get_version(version.model_id, 1) == version
    engine = create_engine(sqlite_url(path))
    with engine.connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert revision == head_revision()


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.insert_job(job("j-1", state=JobState.SUCCEEDED))
    conn = sqlite3.connect(tmp_path / "metadata.sqlite")
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    conn.close()

    with pytest.raises(SchemaTooNew, match="'9999_future', newer than this release knows"):
        Store.open(tmp_path)

    started = subprocess.run(
        [sys.executable, "-m", "ml_service", "--port", "0", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 1
    assert "newer than this release knows" in started.stderr.splitlines()[-1]


def migrate(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m ml_service migrate` on a data directory, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "ml_service", "migrate", "--data-dir", str(data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_command_upgrades_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    old_database(tmp_path / "metadata.sqlite", steps=1)

    def said() -> str:
        done = migrate(tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stderr.strip().splitlines()[-1]

    assert said() == (
        "ml_service: metadata schema of a release from before revisions upgraded to revision"
        f" {head_revision()}"
    )
    assert said() == f"ml_service: metadata schema already at revision {head_revision()}"
    assert "notes" in str(sqlite_schema(tmp_path / "metadata.sqlite")["versions"])


def test_migrate_waits_for_the_service_running_on_the_directory_to_stop(tmp_path: Path) -> None:
    old_database(tmp_path / "metadata.sqlite")
    schema = sqlite_schema(tmp_path / "metadata.sqlite")
    # What a running service of any release holds, the release before Alembic included.
    held = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = migrate(tmp_path)
    finally:
        os.close(held)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"ml_service: data directory {str(tmp_path)!r} is in use by another process;"
        " stop the service using it, then migrate"
    )
    assert sqlite_schema(tmp_path / "metadata.sqlite") == schema
    conn = sqlite3.connect(tmp_path / "metadata.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(legacy.MIGRATIONS)
    conn.close()
