"""Jobs' final states: set once, observed, published, and stored however long it takes.

A job ends here whatever ended it (its run, a cancel, a lapsed lease, a shutdown). Its
watchers learn of the end at once, even when the store cannot record it; the store is
retried a few times, then the state waits in memory (and is served from there) until a
later end, or the shutdown, saves it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from opentelemetry import trace

from ml_service.domain import JobError, JobRecord, JobState
from ml_service.live_jobs import LiveJob, utcnow
from ml_service.store import Store
from ml_service.telemetry import Telemetry

log = logging.getLogger(__name__)

# Waits between attempts to store a job's final state; after the last, it is kept in memory.
SAVE_RETRY_SECONDS = (0.1, 0.5, 2.0)


class FinalStates:
    """End jobs and see that their final states reach the store."""

    def __init__(self, store: Store, telemetry: Telemetry, *, owner: str) -> None:
        self._store = store
        self._shared = store.shared
        self._owner = owner
        self._telemetry = telemetry
        # Final states the store refused to record, by job id: served from here, saved later.
        self._unsaved: dict[str, JobRecord] = {}

    def unsaved(self, job_id: str) -> JobRecord | None:
        """Return the job's final state while the store has not recorded it."""
        return self._unsaved.get(job_id)

    async def finish(self, job: LiveJob, state: JobState, error: JobError | None) -> None:
        """End a job that has not ended yet: observe, store and publish its final state."""
        if job.record.state.is_final:
            return
        job.record.state = state
        job.record.error = error
        job.record.ended_at = utcnow()
        fraction = 1.0 if state is JobState.SUCCEEDED else job.progress.fraction
        job.progress = dataclasses.replace(job.progress, stage=state.value, fraction=fraction)
        self._observe_end(job)
        try:
            await self._save_final(dataclasses.replace(job.record))
        finally:
            # Watchers learn of the end even when the store cannot record it.
            await job.publish()
        log.info("job %s %s", job.record.job_id, state.value)

    async def save_before_close(self) -> None:
        """Try once more to store what is unsaved; log each end that never reached the store."""
        # Last chance: a row left `running` would read "interrupted by a restart" next time.
        await self._save_unsaved()
        for record in self._unsaved.values():
            log.error(
                "job %s ended %s, but the store could not record it",
                record.job_id,
                record.state.value,
            )

    def _observe_end(self, job: LiveJob) -> None:
        record, metrics = job.record, self._telemetry.metrics
        metrics.jobs_ended.labels(record.kind, record.state.value).inc()
        if record.started_at is not None and record.ended_at is not None:
            seconds = (record.ended_at - record.started_at).total_seconds()
            metrics.job_seconds.labels(record.kind, record.state.value).observe(seconds)
        job.span.set_attribute("mlops.job.state", record.state.value)
        if record.error is not None:
            job.span.set_status(trace.StatusCode.ERROR, record.error.message)
        job.span.end()

    async def _save_final(self, record: JobRecord) -> None:
        """Store a final state, retrying; keep it in memory when the store keeps refusing."""
        self._unsaved[record.job_id] = record
        for delay in (0.0, *SAVE_RETRY_SECONDS):
            await asyncio.sleep(delay)
            if await self._save_unsaved():
                return
        log.error(
            "job %s ended %s, but the store refused to record it; retrying later",
            record.job_id,
            record.state.value,
        )

    async def _save_unsaved(self) -> bool:
        """Try to store every unsaved final state; tell whether none is left."""
        for job_id, record in list(self._unsaved.items()):
            try:
                await asyncio.to_thread(self._record_final, record)
            except Exception:
                log.warning("could not record the end of job %s", job_id, exc_info=True)
            else:
                self._unsaved.pop(job_id, None)
        return not self._unsaved

    def _record_final(self, record: JobRecord) -> None:
        if self._shared is None:
            self._store.update_job(record)
        elif not self._shared.finish(record, self._owner):
            # Another replica failed it as lapsed (or the commit already recorded it): the
            # row keeps what it says.
            log.debug("job %s had already ended in the store", record.job_id)
