"""SQL of shared mode: the job queue and claims, leases and heartbeats, cancel requests,
progress, model events.

A queued job is a row with its encoded TrainingTask and no owner; a replica with a free
worker claims the oldest one (`FOR UPDATE SKIP LOCKED`, so claimers never wait on each
other nor take one job twice) and takes its lease in the same transaction. Lease times are
the database's clock (epoch seconds), so replicas with skewed clocks still agree on when a
lease lapsed.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ml_service.domain import JobError, JobRecord, JobState
from ml_service.errors import FailedPrecondition
from ml_service.store import codec
from ml_service.store.database import db_now
from ml_service.store.errors import DatabaseUnavailable
from ml_service.store.job_rows import JOB_COLUMNS, check_queue
from ml_service.store.metadata import Metadata
from ml_service.store.tables import jobs, model_events

_ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)
_QUEUED = JobState.QUEUED.value
_RUNNING = JobState.RUNNING.value


class SharedRows:
    """The rows replicas coordinate through."""

    def __init__(self, metadata: Metadata) -> None:
        self._engine = metadata.engine
        self._now = db_now(metadata.dialect)

    def enqueue(self, job: JobRecord, task: str, max_queued: int, owner: str, slots: int) -> None:
        """Store a queued job with its encoded task; refuse it when the queue is full.

        At most `max_queued` jobs may wait, plus one for each of the `slots` workers of the
        accepting replica that runs nothing now: such a worker takes a job at once.
        """
        try:
            with self._engine.begin() as conn:
                check_queue(conn, max_queued, _idle_workers(owner, slots))
                conn.execute(jobs.insert().values({**codec.job_params(job), "task": task}))
        except sa.exc.IntegrityError:
            raise FailedPrecondition(f"job {job.job_id!r} already exists") from None

    def queued(self) -> float:
        """How many jobs wait in the shared queue, whichever replica accepted them.

        Read by a gauge at scrape time: NaN while the database does not answer, as an error
        would fail the whole scrape.
        """
        waiting = sa.select(sa.func.count()).where(jobs.c.state == _QUEUED)
        try:
            with self._engine.connect() as conn:
                return float(conn.execute(waiting).scalar_one())
        except (sa.exc.SQLAlchemyError, DatabaseUnavailable):
            return math.nan

    def check_room(self, max_queued: int, owner: str, slots: int) -> None:
        """Refuse now, before an upload, a job that enqueue would refuse as things stand."""
        with self._engine.connect() as conn:
            check_queue(conn, max_queued, _idle_workers(owner, slots), lock=False)

    def claim(
        self, owner: str, seconds: float, started_at: datetime
    ) -> tuple[JobRecord, str] | None:
        """Take the oldest queued job for `owner`, leased for `seconds`; None when none waits.

        Return the job, now running, and its encoded task.
        """
        oldest = (
            sa.select(*JOB_COLUMNS, jobs.c.task)
            .where(jobs.c.state == _QUEUED, jobs.c.task.is_not(None), jobs.c.owner.is_(None))
            .order_by(jobs.c.seq)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self._engine.begin() as conn:
            row = conn.execute(oldest).first()
            if row is None:
                return None
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == row.job_id)
                .values(
                    state=_RUNNING,
                    started_at=codec.timestamp(started_at),
                    owner=owner,
                    lease_until=self._now + seconds,
                )
            )
        job = codec.job_from_row(row._mapping)
        job.state, job.started_at = JobState.RUNNING, started_at
        return job, str(row.task)

    def cancel_queued(self, job_id: str, ended_at: datetime) -> bool:
        """Cancel a job that no replica has claimed yet; False when it is not waiting."""
        # A claim holding the row makes this wait for it, then find the job running.
        with self._engine.begin() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.state == _QUEUED, jobs.c.owner.is_(None))
                .values(state=JobState.CANCELLED.value, ended_at=codec.timestamp(ended_at))
            ).rowcount
        return bool(updated)

    def finish(self, job: JobRecord, owner: str) -> bool:
        """Record the final state of a job `owner` runs; False when the row ended elsewhere.

        A replica whose lease lapsed finds its job already failed by another replica, and
        must not overwrite that.
        """
        with self._engine.begin() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job.job_id, jobs.c.owner == owner, jobs.c.state == _RUNNING)
                .values(codec.job_params(job))
            ).rowcount
        return bool(updated)

    def active_job_for_model(self, model_id: str) -> str | None:
        """Return the id of a queued or running job of a model on any replica, if any."""
        query = (
            sa.select(jobs.c.job_id)
            .where(jobs.c.model_id == model_id, jobs.c.state.in_(_ACTIVE))
            .order_by(jobs.c.seq)
            .limit(1)
        )
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def take_leases(self, owner: str, job_ids: list[str], seconds: float) -> set[str]:
        """Hold these jobs for `seconds` from now; renewing is taking again.

        Return the ids held; the others have ended in the store.
        """
        if not job_ids:
            return set()
        with self._engine.begin() as conn:
            return set(
                conn.execute(
                    jobs.update()
                    .where(jobs.c.job_id.in_(job_ids), jobs.c.state.in_(_ACTIVE))
                    .values(owner=owner, lease_until=self._now + seconds)
                    .returning(jobs.c.job_id)
                ).scalars()
            )

    def cancel_requests(self, owner: str) -> list[str]:
        """Return the ids of this replica's unfinished jobs that some replica asked to stop."""
        query = sa.select(jobs.c.job_id).where(
            jobs.c.owner == owner, jobs.c.state.in_(_ACTIVE), jobs.c.cancel_requested != 0
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def request_cancel(self, job_id: str) -> bool:
        """Ask the replica running a job to stop it; False when the job has already ended."""
        with self._engine.begin() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.state.in_(_ACTIVE))
                .values(cancel_requested=1)
            ).rowcount
        return bool(updated)

    def fail_lapsed(self, error: JobError, ended_at: str) -> list[str]:
        """Fail unfinished jobs whose replica stopped renewing its lease; return their ids."""
        with self._engine.begin() as conn:
            return list(
                conn.execute(
                    jobs.update()
                    .where(
                        jobs.c.state.in_(_ACTIVE),
                        jobs.c.lease_until.is_not(None),
                        jobs.c.lease_until < self._now,
                    )
                    .values(
                        state=JobState.FAILED.value,
                        ended_at=ended_at,
                        error_code=error.code,
                        error_message=error.message,
                    )
                    .returning(jobs.c.job_id)
                ).scalars()
            )

    def save_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Record how far a job has got, for watchers on other replicas."""
        with self._engine.begin() as conn:
            conn.execute(
                jobs.update().where(jobs.c.job_id == job_id).values(progress=codec.dumps(progress))
            )

    def progress(self, job_id: str) -> dict[str, Any] | None:
        """Return a job's last recorded progress, if any."""
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(jobs.c.progress).where(jobs.c.job_id == job_id)
            ).scalar_one_or_none()
        return None if found is None else dict(json.loads(found))

    def prune_events(self, older_than_seconds: float) -> int:
        """Delete model events older than that (database clock); return how many."""
        # Events are stamped with the writer's clock, close enough to the database's for a
        # bound of many minutes.
        with self._engine.begin() as conn:
            return conn.execute(
                model_events.delete().where(model_events.c.at < self._now - older_than_seconds)
            ).rowcount

    def first_event(self) -> int:
        """Return the sequence number of the oldest model event kept (0 when there is none)."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.min(model_events.c.seq))).scalar() or 0)

    def last_event(self) -> int:
        """Return the sequence number of the newest model event (0 when there is none)."""
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(model_events.c.seq))).scalar() or 0)

    def events_after(self, seq: int) -> list[tuple[int, str, int, str]]:
        """Return model events newer than `seq`, oldest first: (seq, model, version, event)."""
        query = (
            sa.select(
                model_events.c.seq,
                model_events.c.model_id,
                model_events.c.version,
                model_events.c.event,
            )
            .where(model_events.c.seq > seq)
            .order_by(model_events.c.seq)
        )
        with self._engine.connect() as conn:
            return [(r.seq, r.model_id, r.version, r.event) for r in conn.execute(query)]


def _idle_workers(owner: str, slots: int) -> sa.ColumnElement[int]:
    """How many of the `slots` workers of replica `owner` run no job, read in SQL."""
    running_here = (
        sa.select(sa.func.count())
        .where(jobs.c.state == _RUNNING, jobs.c.owner == owner)
        .scalar_subquery()
    )
    return sa.case((running_here < slots, slots - running_here), else_=0)
