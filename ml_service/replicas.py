"""Shared mode: what one replica does so that all of them act as one service.

One loop, every POLL_SECONDS:
- stop this replica's jobs that another replica was asked to cancel;
- every third of the lease, renew the leases of this replica's jobs and fail any job whose
  lease lapsed (its replica stopped) with "the replica running it stopped";
- read the model change log and drop what the model cache knows of changed models, so a
  delete on one replica is refused here within one poll.

Polling, not LISTEN/NOTIFY: a few indexed reads per replica and interval cost little at
the scale of a handful of replicas, survive connection drops without resubscribing, and
bound every lag by the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from ml_service.domain import JobError
from ml_service.job_manager import JobManager
from ml_service.predictor import Predictions
from ml_service.store import StoreUnreachable, codec
from ml_service.store.shared import SharedRows

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
REPLICA_STOPPED = JobError("ABORTED", "the replica running it stopped")


class ReplicaSync:
    """Keep this replica's leases, cancels and model cache in step with the others."""

    def __init__(
        self,
        shared: SharedRows,
        jobs: JobManager,
        predictions: Predictions,
        *,
        owner: str,
        lease_seconds: float,
    ) -> None:
        self._shared = shared
        self._jobs = jobs
        self._predictions = predictions
        self._owner = owner
        self._lease = lease_seconds
        self._task: asyncio.Task[None] | None = None
        self._seen = 0

    async def start(self) -> None:
        """Start following from the newest model event."""
        self._seen = await asyncio.to_thread(self._shared.last_event)
        self._task = asyncio.create_task(self._run(), name="replica-sync")

    async def close(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_renewal = 0.0
        lost = False
        while True:
            try:
                await self._follow_model_events()
                await self._stop_cancelled()
                if loop.time() >= next_renewal:
                    next_renewal = loop.time() + self._lease / 3
                    await self._renew_and_reap()
                if lost:
                    log.info("replica sync resumed: the database answers again")
                lost = False
            except asyncio.CancelledError:
                raise
            except StoreUnreachable as exc:
                # Said once per outage, not four times a second; readiness says it too.
                if not lost:
                    log.warning("replica sync paused: %s (%s)", exc.message, exc.reason)
                lost = True
            except Exception:
                # The database may be away for a moment; the next round tries again.
                log.warning("replica sync failed; retrying", exc_info=True)
            await asyncio.sleep(POLL_SECONDS)

    async def _follow_model_events(self) -> None:
        events = await asyncio.to_thread(self._shared.events_after, self._seen)
        for seq, model_id, version, event in events:
            if event == "deleted":
                self._predictions.forget(model_id, version)
            else:
                self._predictions.forget_latest(model_id)
            self._seen = seq

    async def _stop_cancelled(self) -> None:
        for job_id in await asyncio.to_thread(self._shared.cancel_requests, self._owner):
            if job_id in self._jobs.local_job_ids():
                log.info("job %s cancelled through another replica", job_id)
                await self._jobs.cancel(job_id)

    async def _renew_and_reap(self) -> None:
        mine = self._jobs.local_job_ids()
        await asyncio.to_thread(self._shared.take_leases, self._owner, mine, self._lease)
        ended_at = codec.timestamp(datetime.now(UTC))
        failed = await asyncio.to_thread(self._shared.fail_lapsed, REPLICA_STOPPED, ended_at)
        for job_id in failed:
            log.warning("job %s failed: its replica stopped renewing the lease", job_id)
