"""SQL of shared mode: job leases and heartbeats, cancel requests, progress, model events.

Lease times are the database's clock (epoch seconds), so replicas with skewed clocks still
agree on when a lease lapsed.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ml_service.domain import JobError, JobState
from ml_service.store import codec
from ml_service.store.metadata import Metadata
from ml_service.store.tables import jobs, model_events

_ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


def db_now(dialect: str) -> sa.ColumnElement[Any]:
    """The database's current time in epoch seconds."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", sa.func.clock_timestamp())
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


class SharedRows:
    """The rows replicas coordinate through."""

    def __init__(self, metadata: Metadata) -> None:
        self._engine = metadata.engine
        self._now = db_now(metadata.dialect)

    def take_leases(self, owner: str, job_ids: list[str], seconds: float) -> None:
        """Hold these jobs for `seconds` from now; renewing is taking again."""
        if not job_ids:
            return
        with self._engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id.in_(job_ids), jobs.c.state.in_(_ACTIVE))
                .values(owner=owner, lease_until=self._now + seconds)
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
