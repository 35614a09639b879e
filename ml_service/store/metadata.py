"""SQL for models, versions and jobs through SQLAlchemy Core, on SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import QueuePool

from ml_service.domain import JobError, JobRecord, JobState, ModelRecord, VersionRecord
from ml_service.errors import FailedPrecondition, NotFound, ResourceExhausted
from ml_service.store import codec
from ml_service.store.database import create_engine, db_now, sqlite_url, upgrade
from ml_service.store.errors import LeaseLost
from ml_service.store.tables import jobs, model_events, models, version_counters, versions

_ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)
# Keys are 64-bit integers on both databases; the first page starts below the largest.
_NO_KEY = 2**63 - 1
_QUEUE_LOCK = 0x6D6C6F7071
QUEUE_RETRY_SECONDS = 5.0

_VERSION_COLUMNS = [c for c in versions.c]
#: A job row's columns that make its JobRecord.
JOB_COLUMNS = [c for c in jobs.c if c.name not in ("seq", "task")]


def _model_select() -> sa.Select[Any]:
    """Select models with their newest version's number and time and their version count."""
    latest, counted, newest = versions.alias("v"), versions.alias("c"), versions.alias("x")
    count = sa.select(sa.func.count()).where(counted.c.model_id == models.c.model_id)
    top = sa.select(sa.func.max(newest.c.version)).where(newest.c.model_id == models.c.model_id)
    return (
        sa.select(
            models,
            latest.c.version.label("latest_version"),
            latest.c.created_at.label("updated_at"),
            count.scalar_subquery().label("version_count"),
        )
        .select_from(models)
        .join(
            latest,
            sa.and_(
                latest.c.model_id == models.c.model_id, latest.c.version == top.scalar_subquery()
            ),
        )
    )


def _log_event(conn: sa.Connection, model_id: str, version: int, event: str) -> None:
    # In the transaction of the change itself: no replica can see one without the other.
    conn.execute(
        model_events.insert().values(
            model_id=model_id, version=version, event=event, at=time.time()
        )
    )


def check_queue(
    conn: sa.Connection,
    max_queued: int,
    extra: int | sa.ColumnElement[int] = 0,
    *,
    lock: bool = True,
) -> None:
    """Refuse a new job when `max_queued` (plus `extra`, read in the same statement) wait.

    `lock=False` only looks, e.g. to refuse before an upload; the insert checks again.
    """
    # Counted inside the inserting transaction, under a lock every replica's insert takes:
    # two replicas cannot both see the last free place.
    if lock and conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _QUEUE_LOCK})
    waiting_now = sa.select(sa.func.count()).where(jobs.c.state == JobState.QUEUED.value)
    waiting, room = conn.execute(
        sa.select(waiting_now.scalar_subquery(), sa.literal(max_queued) + extra)
    ).one()
    if waiting >= room:
        raise ResourceExhausted(
            f"the training queue is full ({waiting} jobs waiting); retry later",
            retry_after_seconds=QUEUE_RETRY_SECONDS,
        )


def _require_lease(conn: sa.Connection, job_id: str, owner: str) -> None:
    # The row stays locked until the version commits, so no replica can fail the job as
    # lapsed in between; a replica that already did has left it no longer running.
    held = conn.execute(
        sa.select(jobs.c.job_id)
        .where(
            jobs.c.job_id == job_id,
            jobs.c.owner == owner,
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.lease_until >= db_now(conn.dialect.name),
        )
        .with_for_update()
    ).first()
    if held is None:
        raise LeaseLost(f"this replica no longer holds the lease of job {job_id!r}")


def _model_missing(model_id: str) -> NotFound:
    return NotFound(f"model {model_id!r} not found")


class Metadata:
    """Models, versions and jobs in one SQL database."""

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

    # Models and versions

    def allocate_version(self, model_id: str) -> int:
        """Take the next version number of a model; a number is never handed out twice."""
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        counted = insert(version_counters).values(model_id=model_id, last_version=1)
        statement = counted.on_conflict_do_update(
            index_elements=[version_counters.c.model_id],
            set_={"last_version": version_counters.c.last_version + 1},
        ).returning(version_counters.c.last_version)
        with self._write() as conn:
            return int(conn.execute(statement).scalar_one())

    def insert_version(
        self, record: VersionRecord, name: str, description: str, owner: str | None = None
    ) -> None:
        """Insert a version, and its model when it is the first; mark its job as succeeded.

        With `owner` (shared mode), only while that replica still holds the running job's
        lease; otherwise raise LeaseLost and insert nothing.
        """
        try:
            with self._write() as conn:
                if owner is not None:
                    _require_lease(conn, record.job_id, owner)
                self._insert_version(conn, record, name, description)
        except sa.exc.IntegrityError:
            # Two first versions of one model committed at once on two replicas.
            raise FailedPrecondition(f"model {record.model_id!r} already exists") from None

    def _insert_version(
        self, conn: sa.Connection, record: VersionRecord, name: str, description: str
    ) -> None:
        kind = conn.execute(
            sa.select(models.c.kind).where(models.c.model_id == record.model_id)
        ).scalar_one_or_none()
        if record.parent_version == 0:
            if kind is not None:
                raise FailedPrecondition(f"model {record.model_id!r} already exists")
            conn.execute(
                models.insert().values(
                    model_id=record.model_id,
                    name=name,
                    description=description,
                    kind=record.kind,
                    created_at=codec.timestamp(record.created_at),
                )
            )
        elif kind is None:
            # Deleted while a retrain ran; the new version has nothing to belong to.
            raise _model_missing(record.model_id)
        elif kind != record.kind:
            raise FailedPrecondition(
                f"model {record.model_id!r} is of kind {kind!r}, not {record.kind!r}"
            )
        conn.execute(versions.insert().values(codec.version_params(record)))
        _log_event(conn, record.model_id, record.version, "committed")
        # Same transaction, so a crash cannot leave a committed version whose job reads as
        # interrupted; a later update_job from the job manager writes the same outcome.
        conn.execute(
            jobs.update()
            .where(jobs.c.job_id == record.job_id, jobs.c.state.in_(_ACTIVE_STATES))
            .values(
                state=JobState.SUCCEEDED.value,
                result_version=record.version,
                ended_at=codec.timestamp(record.created_at),
            )
        )

    def get_model(self, model_id: str) -> ModelRecord:
        """Return a model or raise NotFound."""
        with self._read() as conn:
            found = conn.execute(_model_select().where(models.c.model_id == model_id)).first()
        if found is None:
            raise _model_missing(model_id)
        return codec.model_from_row(found._mapping)

    def list_models(self, limit: int, after: int | None) -> list[tuple[int, ModelRecord]]:
        """Return up to `limit` models older than seq `after`, newest first, with their seq."""
        query = (
            _model_select()
            .where(models.c.seq < (_NO_KEY if after is None else after))
            .order_by(models.c.seq.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [(row.seq, codec.model_from_row(row._mapping)) for row in rows]

    def get_version(self, model_id: str, version: int) -> VersionRecord:
        """Return a version (0 = latest) or raise NotFound naming what is missing."""
        query = sa.select(*_VERSION_COLUMNS).where(versions.c.model_id == model_id)
        if version == 0:
            query = query.order_by(versions.c.version.desc()).limit(1)
        else:
            query = query.where(versions.c.version == version)
        with self._read() as conn:
            row = conn.execute(query).first()
            if row is None:
                self._require_model(conn, model_id)
                raise NotFound(f"model {model_id!r} has no version {version}")
        return codec.version_from_row(row._mapping)

    def list_versions(self, model_id: str, limit: int, after: int | None) -> list[VersionRecord]:
        """Return up to `limit` versions numbered below `after`, newest first."""
        query = (
            sa.select(*_VERSION_COLUMNS)
            .where(
                versions.c.model_id == model_id,
                versions.c.version < (_NO_KEY if after is None else after),
            )
            .order_by(versions.c.version.desc())
            .limit(limit)
        )
        with self._read() as conn:
            self._require_model(conn, model_id)
            rows = conn.execute(query).all()
        return [codec.version_from_row(row._mapping) for row in rows]

    def delete_model(self, model_id: str) -> list[str]:
        """Delete a model with its versions; return the artifact keys they used."""
        with self._write() as conn:
            self._require_model(conn, model_id)
            keys = conn.execute(
                versions.delete()
                .where(versions.c.model_id == model_id)
                .returning(versions.c.artifact_key)
            ).scalars()
            found = list(keys)
            conn.execute(models.delete().where(models.c.model_id == model_id))
            _log_event(conn, model_id, 0, "deleted")
        return found

    def delete_version(self, model_id: str, version: int) -> tuple[str, bool]:
        """Delete a version, and its model when it was the last; return its artifact key."""
        with self._write() as conn:
            key = conn.execute(
                versions.delete()
                .where(versions.c.model_id == model_id, versions.c.version == version)
                .returning(versions.c.artifact_key)
            ).scalar_one_or_none()
            if key is None:
                self._require_model(conn, model_id)
                raise NotFound(f"model {model_id!r} has no version {version}")
            left = conn.execute(
                sa.select(sa.func.count()).where(versions.c.model_id == model_id)
            ).scalar_one()
            if left == 0:
                conn.execute(models.delete().where(models.c.model_id == model_id))
            _log_event(conn, model_id, 0 if left == 0 else version, "deleted")
        return str(key), left == 0

    @staticmethod
    def _require_model(conn: sa.Connection, model_id: str) -> None:
        found = conn.execute(sa.select(models.c.seq).where(models.c.model_id == model_id))
        if found.first() is None:
            raise _model_missing(model_id)

    # Jobs

    def insert_job(self, job: JobRecord, max_queued: int | None = None) -> None:
        """Insert a new job; with `max_queued`, refuse it when that many jobs already wait."""
        try:
            with self._write() as conn:
                if max_queued is not None:
                    check_queue(conn, max_queued)
                conn.execute(jobs.insert().values(codec.job_params(job)))
        except sa.exc.IntegrityError:
            raise FailedPrecondition(f"job {job.job_id!r} already exists") from None

    def update_job(self, job: JobRecord) -> None:
        """Overwrite a stored job with this record."""
        with self._write() as conn:
            updated = conn.execute(
                jobs.update().where(jobs.c.job_id == job.job_id).values(codec.job_params(job))
            ).rowcount
        if updated == 0:
            raise NotFound(f"job {job.job_id!r} not found")

    def get_job(self, job_id: str) -> JobRecord:
        """Return a job or raise NotFound."""
        with self._read() as conn:
            row = conn.execute(sa.select(*JOB_COLUMNS).where(jobs.c.job_id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return codec.job_from_row(row._mapping)

    def list_jobs(
        self, limit: int, after: int | None, model_id: str
    ) -> list[tuple[int, JobRecord]]:
        """Return up to `limit` jobs older than seq `after`, newest first, with their seq."""
        query = sa.select(jobs).where(jobs.c.seq < (_NO_KEY if after is None else after))
        if model_id:
            query = query.where(jobs.c.model_id == model_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(jobs.c.seq.desc()).limit(limit)).all()
        return [(row.seq, codec.job_from_row(row._mapping)) for row in rows]

    def fail_interrupted_jobs(self, now: datetime, error: JobError) -> int:
        """Mark jobs a previous process left queued or running as failed; return how many."""
        with self._write() as conn:
            return conn.execute(
                jobs.update()
                .where(jobs.c.state.in_(_ACTIVE_STATES))
                .values(
                    state=JobState.FAILED.value,
                    ended_at=codec.timestamp(now),
                    error_code=error.code,
                    error_message=error.message,
                )
            ).rowcount

    # Sweep support

    def artifact_keys(self) -> set[str]:
        """Return every artifact key a version row points at."""
        with self._read() as conn:
            return set(conn.execute(sa.select(versions.c.artifact_key)).scalars())

    def dataset_digests(self) -> set[str]:
        """Return the digests of datasets that a version or a non-final job references."""
        query = sa.union(
            sa.select(versions.c.dataset_digest),
            sa.select(jobs.c.dataset_digest).where(jobs.c.state.in_(_ACTIVE_STATES)),
        )
        with self._read() as conn:
            return set(conn.execute(query).scalars())
