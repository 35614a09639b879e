"""Shared mode: what one replica does so that all of them act as one service.

One loop, every POLL_SECONDS:
- stop this replica's jobs that another replica was asked to cancel;
- every third of the lease, renew the leases of this replica's jobs and fail any job whose
  lease lapsed (its replica stopped) with "the replica running it stopped"; a job of this
  replica that another one failed so (this one stalled past its lease) is stopped here;
- read the model change log and drop what the model cache knows of changed models, so a
  delete on one replica is refused here within one poll.

A second loop, at start and then every HOUSEKEEPING_SECONDS, deletes model events older
than the retention and sweeps the object store of files no row references once they are
older than the grace period. Every replica runs it; both steps are idempotent, so no
replica needs electing.

Polling, not LISTEN/NOTIFY: a few indexed reads per replica and interval cost little at
the scale of a handful of replicas, survive connection drops without resubscribing, and
bound every lag by the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from ml_service.domain import JobState
from ml_service.job_manager import JobManager
from ml_service.live_jobs import LEASE_LAPSED
from ml_service.predictor import Predictions
from ml_service.store import Store, StoreUnreachable, codec

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
HOUSEKEEPING_SECONDS = 300.0
# A replica whose loop stalls longer than this misses deletes: far above any hiccup.
EVENT_RETENTION_SECONDS = 3600.0
# A file is written a moment before its row commits (an artifact) or its job is queued (a
# dataset); an hour without a row means nothing will ever reference it.
ORPHAN_GRACE_SECONDS = 3600.0
# Event numbers are taken when a transaction writes, not when it commits: a later number
# can be seen first. A missing number below the newest is read again for this long before
# it is taken for a rolled-back transaction's (or a pruned event).
GAP_WAIT_SECONDS = 10.0


class ReplicaSync:
    """Keep this replica's leases, cancels and model cache in step with the others."""

    def __init__(
        self,
        store: Store,
        jobs: JobManager,
        predictions: Predictions,
        *,
        owner: str,
        lease_seconds: float,
        housekeeping_seconds: float = HOUSEKEEPING_SECONDS,
        event_retention_seconds: float = EVENT_RETENTION_SECONDS,
        orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS,
    ) -> None:
        assert store.shared is not None, "replica sync is for a shared store"
        self._store = store
        self._shared = store.shared
        self._jobs = jobs
        self._predictions = predictions
        self._owner = owner
        self._lease = lease_seconds
        self._housekeeping = housekeeping_seconds
        self._event_retention = event_retention_seconds
        self._orphan_grace = orphan_grace_seconds
        self._tasks: list[asyncio.Task[None]] = []
        # Every event up to _seen is handled; above it, those in _handled, and the numbers
        # still missing since when.
        self._seen = 0
        self._handled: set[int] = set()
        self._gaps: dict[int, float] = {}

    async def start(self) -> None:
        """Start following from the newest model event."""
        self._seen = await asyncio.to_thread(self._shared.last_event)
        self._tasks = [
            asyncio.create_task(self._run(), name="replica-sync"),
            # Apart: listing a large bucket must not hold up lease renewals.
            asyncio.create_task(self._housekeep(), name="replica-housekeeping"),
        ]

    async def close(self) -> None:
        """Stop the loops."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
            if seq in self._handled:
                continue
            if event == "deleted":
                self._predictions.forget(model_id, version)
            else:
                self._predictions.forget_latest(model_id)
            self._handled.add(seq)
        now = asyncio.get_running_loop().time()
        for missing in range(self._seen + 1, max(self._handled, default=self._seen)):
            if missing not in self._handled:
                self._gaps.setdefault(missing, now)
        while True:
            after = self._seen + 1
            if after in self._handled:
                self._handled.discard(after)
            elif now - self._gaps.get(after, now) > GAP_WAIT_SECONDS:
                log.info("model event %d never appeared; following on past it", after)
            else:
                break
            self._gaps.pop(after, None)
            self._seen = after

    async def _stop_cancelled(self) -> None:
        for job_id in await asyncio.to_thread(self._shared.cancel_requests, self._owner):
            if job_id in self._jobs.local_job_ids():
                log.info("job %s cancelled through another replica", job_id)
                await self._jobs.cancel(job_id)

    async def _renew_and_reap(self) -> None:
        mine = self._jobs.local_job_ids()
        held = await asyncio.to_thread(self._shared.take_leases, self._owner, mine, self._lease)
        for job_id in set(mine) - held:
            # Ended in the store: committed a moment ago, or failed by another replica
            # after this one stalled past its lease, whose worker must stop now.
            stored = await asyncio.to_thread(self._store.get_job, job_id)
            if stored.state is not JobState.SUCCEEDED:
                await self._jobs.abandon(job_id)
        ended_at = codec.timestamp(datetime.now(UTC))
        failed = await asyncio.to_thread(self._shared.fail_lapsed, LEASE_LAPSED, ended_at)
        for job_id in failed:
            log.warning("job %s failed: its replica stopped renewing the lease", job_id)

    async def _housekeep(self) -> None:
        while True:
            try:
                pruned = await asyncio.to_thread(self._shared.prune_events, self._event_retention)
                if pruned:
                    log.info("pruned %d model events", pruned)
                await asyncio.to_thread(self._store.sweep_orphans, self._orphan_grace)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("housekeeping failed; retrying later", exc_info=True)
            await asyncio.sleep(self._housekeeping)
