"""SQL for training jobs: insert under the queue limit, update, look up, page, fail leftovers."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ml_service.domain import JobError, JobRecord, JobState
from ml_service.errors import FailedPrecondition, NotFound, ResourceExhausted
from ml_service.store import codec
from ml_service.store.database import Database
from ml_service.store.paging import MAX_KEY
from ml_service.store.tables import jobs

#: The states of a job that has not ended yet.
ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)
_QUEUE_LOCK = 0x6D6C6F7071
QUEUE_RETRY_SECONDS = 5.0

#: A job row's columns that make its JobRecord.
JOB_COLUMNS = [c for c in jobs.c if c.name not in ("seq", "task")]


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


class JobRows(Database):
    """Training jobs in the metadata database."""

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
        query = sa.select(jobs).where(jobs.c.seq < (MAX_KEY if after is None else after))
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
                .where(jobs.c.state.in_(ACTIVE_STATES))
                .values(
                    state=JobState.FAILED.value,
                    ended_at=codec.timestamp(now),
                    error_code=error.code,
                    error_message=error.message,
                )
            ).rowcount
