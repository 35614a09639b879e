"""Shared mode's side of the job manager: the queue is the jobs table, shared by replicas.

A job is stored with its encoded task and no owner; each free worker slot of every replica
claims the oldest waiting one (`FOR UPDATE SKIP LOCKED`, its lease taken in the same
transaction) and places its task on this replica's files. Jobs this replica does not hold
are read, watched and cancelled through their rows: a queued one is cancelled in its row,
a running one through a flag its owner polls.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import AsyncGenerator

from opentelemetry import context as otel_context

from ml_service import training_contract
from ml_service.domain import JobError, JobRecord, JobState, Progress
from ml_service.errors import NotFound, Unavailable
from ml_service.executors import Executor
from ml_service.final_states import FinalStates
from ml_service.kinds import get_kind
from ml_service.live_jobs import ENDED_KEPT, JobTable, JobView, LiveJob, final_progress, utcnow
from ml_service.store import Store
from ml_service.store.shared import SharedRows
from ml_service.tracing import current_context
from ml_service.training_contract import TrainingTask

log = logging.getLogger(__name__)

# How often other replicas' rows are read and an idle slot looks for queued jobs; with the
# runs' progress saves it bounds a remote watcher's lag to well under a second.
SHARED_POLL_SECONDS = 0.25
CANCEL_WAIT_SECONDS = 5.0

# Stands for a claimed job's task until it is decoded and placed; never run.
_UNPLACED = TrainingTask("", {}, "", "", (), 0.0, 0, "")


class SharedJobs:
    """Queue jobs in the database, claim them for this replica, follow the others' jobs."""

    def __init__(
        self,
        store: Store,
        shared: SharedRows,
        table: JobTable,
        finals: FinalStates,
        executor: Executor,
        *,
        owner: str,
        lease_seconds: float,
        slots: int,
        max_queued: int,
    ) -> None:
        self._store = store
        self._shared = shared
        self._table = table
        self._finals = finals
        self._executor = executor
        self._owner = owner
        self._lease = lease_seconds
        self._slots = slots
        self._max_queued = max_queued
        # Set when this replica queued a job, so an idle slot claims at once instead of at
        # its next poll.
        self._wake = asyncio.Event()
        # The trace of each call that queued a job here, for when this replica also claims
        # it (another replica's run starts a trace of its own).
        self._queued_traces: collections.OrderedDict[str, otel_context.Context] = (
            collections.OrderedDict()
        )

    async def active_job_for_model(self, model_id: str) -> str | None:
        """Return the id of a queued job or another replica's running one for the model."""
        return await asyncio.to_thread(self._shared.active_job_for_model, model_id)

    async def check_room(self) -> None:
        """Refuse a new job when the global queue is full, before its data is uploaded."""
        await asyncio.to_thread(self._shared.check_room, self._max_queued, self._owner, self._slots)

    async def enqueue(self, record: JobRecord, task: TrainingTask) -> JobView:
        """Store the job and its task for whichever replica has a free worker."""
        # Before the insert: a polling slot of ours may claim the row before it returns.
        self._queued_traces[record.job_id] = current_context()
        while len(self._queued_traces) > ENDED_KEPT:
            self._queued_traces.popitem(last=False)
        # The queue is global and counted in the inserting transaction, so it stays exact
        # however many replicas accept jobs at once.
        try:
            await asyncio.to_thread(
                self._shared.enqueue,
                record,
                training_contract.encode(task),
                self._max_queued,
                self._owner,
                self._slots,
            )
        except BaseException:
            self._queued_traces.pop(record.job_id, None)
            raise
        self._wake.set()
        return JobView(dataclasses.replace(record), Progress(stage="queued", fraction=0.0))

    async def view(self, job_id: str) -> JobView:
        """Read a job another replica runs (or ran), with its last recorded progress."""
        record = await asyncio.to_thread(self._store.get_job, job_id)
        progress = await asyncio.to_thread(self._shared.progress, job_id)
        if record.state.is_final or progress is None:
            return JobView(record, final_progress(record))
        return JobView(record, Progress(**progress))

    async def cancel(self, job_id: str) -> JobView | None:
        """Cancel a job this replica does not hold; None when it had already ended.

        A queued job is cancelled in its row; for a running one the replica that runs it is
        asked to stop it, and the end is waited for a little, to report it.
        """
        if await asyncio.to_thread(self._shared.cancel_queued, job_id, utcnow()):
            log.info("job %s cancelled before any replica claimed it", job_id)
            return await self.view(job_id)
        if not await asyncio.to_thread(self._shared.request_cancel, job_id):
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_SECONDS
        view = await self.view(job_id)
        while not view.record.state.is_final and loop.time() < deadline:
            await asyncio.sleep(SHARED_POLL_SECONDS)
            view = await self.view(job_id)
        return view

    async def follow(self, job_id: str) -> AsyncGenerator[JobView, None]:
        """Yield another replica's job now and after every change, until it ends."""
        # Polling, not LISTEN/NOTIFY: a watcher costs one indexed read per interval, and
        # needs no connection of its own.
        last: JobView | None = None
        while True:
            view = await self.view(job_id)
            if last is None or (view.record, view.progress) != (last.record, last.progress):
                yield view
                last = view
            if view.record.state.is_final:
                return
            await asyncio.sleep(SHARED_POLL_SECONDS)

    async def claim(self) -> LiveJob:
        """Wait until this slot takes the oldest job any replica queued."""
        away = False
        while True:
            # Cleared before looking, so a job queued during the look wakes the next wait.
            self._wake.clear()
            try:
                claimed = await asyncio.to_thread(
                    self._shared.claim, self._owner, self._lease, utcnow()
                )
                away = False
            except Unavailable as exc:
                # Said once per outage, not four times a second; readiness says it too.
                if not away:
                    log.warning("could not claim queued jobs: %s", exc.message)
                away = True
                claimed = None
            except Exception:
                # The database may be away for a moment; the next poll tries again.
                log.warning("could not claim a queued job; retrying", exc_info=True)
                claimed = None
            if claimed is not None:
                return await self._claimed(*claimed)
            # asyncio.wait, not wait_for: on Python 3.11 wait_for swallows a cancel that meets
            # a wake-up, and this slot would then outlive the server's stop.
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({woken}, timeout=SHARED_POLL_SECONDS)
            finally:
                woken.cancel()

    async def _claimed(self, record: JobRecord, text: str) -> LiveJob:
        """Make a claimed row a live job, its task placed on this replica's files."""
        trace_context = self._queued_traces.pop(record.job_id, None)
        job = LiveJob(record=record, task=_UNPLACED, trace_context=trace_context)
        self._table.live[record.job_id] = job
        log.info("job %s claimed", record.job_id)
        try:
            task = training_contract.decode_task(text)
            # The accepting replica's paths mean nothing here: read the data where this
            # replica's runs read it (a local copy, or the bucket for Ray), write the artifact
            # to its own scratch space.
            dataset_path = await asyncio.to_thread(
                self._executor.dataset_location, record.dataset_digest
            )
            job.task = dataclasses.replace(
                task,
                dataset_path=dataset_path,
                artifact_path=self._store.scratch_path(get_kind(task.kind).artifact_suffix),
            )
        except NotFound:
            message = "the job's training data is no longer in the store"
            error = JobError("FAILED_PRECONDITION", message)
            await self._finals.finish(job, JobState.FAILED, error)
        except Unavailable as exc:
            await self._finals.finish(job, JobState.FAILED, JobError("UNAVAILABLE", exc.message))
        except Exception:
            log.exception("job %s could not be prepared", record.job_id)
            await self._finals.finish(job, JobState.FAILED, JobError("INTERNAL", "internal error"))
        return job
