"""Training jobs: the `JobManager` facade, its queue and dispatchers, and what readers see.

Embedded, the queue is in memory and this process runs what it accepted. Shared, the queue
is the jobs table (`shared_jobs`): a job is stored with its encoded task, each free worker
slot of every replica claims the oldest waiting one, and the replica that claimed a job
alone records its end, and commits its version only while it still holds the job's lease.

The manager composes the parts: `live_jobs` (the jobs this process holds), `job_runs` (one
job through an executor, and its commit), `final_states` (ends that always land) and, in
shared mode, `shared_jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from ml_service.domain import JobError, JobRecord, JobState
from ml_service.errors import FailedPrecondition, ResourceExhausted
from ml_service.executors import Executor
from ml_service.executors.local import LocalExecutor
from ml_service.final_states import FinalStates
from ml_service.job_runs import Commit, JobRunner
from ml_service.live_jobs import LEASE_LAPSED, JobTable, JobView, LiveJob, final_progress
from ml_service.shared_jobs import SharedJobs
from ml_service.store import Store
from ml_service.telemetry import Telemetry
from ml_service.tracing import current_context
from ml_service.training_contract import TrainingTask

log = logging.getLogger(__name__)

QUEUE_RETRY_SECONDS = 5.0


class JobManager:
    """Queue training jobs, run them through the executor and publish their progress."""

    def __init__(
        self,
        store: Store,
        commit: Commit,
        *,
        max_concurrent: int,
        max_queued: int,
        cancel_grace_seconds: float,
        telemetry: Telemetry | None = None,
        owner: str = "",
        lease_seconds: float = 0.0,
        executor: Executor | None = None,
    ) -> None:
        self._store = store
        self._max_queued = max_queued
        self._slots = max_concurrent
        self._executor = executor or LocalExecutor(store.dataset_path, cancel_grace_seconds)
        self._telemetry = telemetry or Telemetry()
        self._table = JobTable()
        self._queue: asyncio.Queue[LiveJob] = asyncio.Queue()
        self._finals = FinalStates(store, self._telemetry, owner=owner)
        self._runner = JobRunner(store, self._executor, commit, self._finals, self._telemetry)
        # Shared mode: the queue is the jobs table, and other replicas' jobs are rows.
        self._shared_jobs = (
            None
            if store.shared is None
            else SharedJobs(
                store,
                store.shared,
                self._table,
                self._finals,
                self._executor,
                owner=owner,
                lease_seconds=lease_seconds,
                slots=max_concurrent,
                max_queued=max_queued,
            )
        )
        self._dispatchers: list[asyncio.Task[None]] = []
        metrics = self._telemetry.metrics
        if store.shared is None:
            metrics.gauge_from(metrics.jobs_queued, lambda: self._table.count(JobState.QUEUED))
        else:
            # The queue is the jobs table: a waiting job is a row no replica holds, so this
            # process's own count stayed near 0 however many waited.
            metrics.gauge_from(metrics.jobs_queued, store.shared.queued)
        metrics.gauge_from(metrics.jobs_running, lambda: self._table.count(JobState.RUNNING))

    async def start(self) -> None:
        """Start the executor and the dispatchers."""
        await self._executor.start()
        self._dispatchers = [
            asyncio.create_task(self._dispatch(), name=f"training-slot-{i}")
            for i in range(self._slots)
        ]

    async def close(self) -> None:
        """Stop dispatching and end every running worker; their jobs fail as interrupted."""
        for task in self._dispatchers:
            # Asked again until it ends: a library's wait may swallow one cancel (Python
            # 3.11's wait_for does when the cancel meets its answer).
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in list(self._table.live.values()):
            if not job.record.state.is_final:
                error = JobError("ABORTED", "server shut down")
                await self._finals.finish(job, JobState.FAILED, error)
                await self._runner.stop(job)
        await self._finals.save_before_close()
        await self._executor.close()

    def dataset_location(self, digest: str) -> str:
        """Return where a run reads a stored dataset: it depends on where runs happen."""
        return self._executor.dataset_location(digest)

    async def active_job_for_model(self, model_id: str) -> str | None:
        """Return the id of a queued or running job that writes to the model, if any."""
        for job in self._table.live.values():
            if job.record.model_id == model_id and not job.record.state.is_final:
                return job.record.job_id
        if self._shared_jobs is not None:
            # Queued jobs and other replicas' running ones are only rows.
            return await self._shared_jobs.active_job_for_model(model_id)
        return None

    async def check_room(self) -> None:
        """Refuse a new job now when the queue is full, before its data is uploaded."""
        if self._shared_jobs is None:
            self._check_capacity()
        else:
            await self._shared_jobs.check_room()

    def _check_capacity(self) -> None:
        """Refuse a new job now when this process's queue is full (embedded mode)."""
        states = [j.record.state for j in self._table.live.values()]
        queued = states.count(JobState.QUEUED)
        # A job that a free worker slot will take at once does not wait in the queue.
        free_slots = max(0, self._slots - states.count(JobState.RUNNING))
        if queued >= self._max_queued + free_slots:
            raise ResourceExhausted(
                f"the training queue is full ({self._max_queued} jobs waiting); retry later",
                retry_after_seconds=QUEUE_RETRY_SECONDS,
            )

    def local_job_ids(self) -> list[str]:
        """Return the ids of the unfinished jobs this process queues or runs."""
        return [j for j, job in self._table.live.items() if not job.record.state.is_final]

    async def submit(self, record: JobRecord, task: TrainingTask) -> JobView:
        """Queue a job; refuse it when the queue is full."""
        if self._shared_jobs is not None:
            return await self._shared_jobs.enqueue(record, task)
        # Check and register with no await between them: concurrent submissions that all
        # passed the check before any registered would overfill the queue.
        self._check_capacity()
        job = LiveJob(record=record, task=task, trace_context=current_context())
        self._table.live[record.job_id] = job
        try:
            await asyncio.to_thread(self._store.insert_job, record)
        except BaseException:
            self._table.live.pop(record.job_id, None)
            raise
        self._queue.put_nowait(job)
        return job.view()

    async def get(self, job_id: str) -> JobView:
        """Return the live job, or the stored one once it has left this process."""
        job = self._table.find(job_id)
        if job is not None:
            return job.view()
        record = self._finals.unsaved(job_id)
        if record is None and self._shared_jobs is not None:
            return await self._shared_jobs.view(job_id)
        if record is None:
            record = await asyncio.to_thread(self._store.get_job, job_id)
        return JobView(record, final_progress(record))

    def live_view(self, job_id: str) -> JobView | None:
        """Return the job's snapshot when this process holds it."""
        job = self._table.find(job_id)
        return job.view() if job is not None else None

    async def cancel(self, job_id: str) -> JobView:
        """Cancel a queued or running job; a final job cannot be cancelled."""
        job = self._table.live.get(job_id)
        if job is None and self._shared_jobs is not None:
            view = await self._shared_jobs.cancel(job_id)
            if view is not None:
                return view
        if job is None or job.record.state.is_final:
            state = job.record.state if job else (await self.get(job_id)).record.state
            raise FailedPrecondition(
                f"job '{job_id}' has already ended ({state.value}); nothing to cancel"
            )
        await self._finals.finish(job, JobState.CANCELLED, None)
        await self._runner.stop(job)
        return job.view()

    async def abandon(self, job_id: str) -> None:
        """Stop a job another replica failed as lapsed: its work can no longer be committed."""
        job = self._table.live.get(job_id)
        if job is None or job.record.state.is_final:
            return
        log.warning("job %s was failed elsewhere as lapsed; stopping its worker", job_id)
        await self._finals.finish(job, JobState.FAILED, LEASE_LAPSED)
        await self._runner.stop(job)

    async def watch(self, job_id: str) -> AsyncIterator[JobView]:
        """Yield the job now and after every change until it reaches a final state."""
        job = self._table.live.get(job_id)
        if job is None and self._shared_jobs is not None:
            # Another replica runs it: follow its row.
            async with contextlib.aclosing(self._shared_jobs.follow(job_id)) as views:
                async for view in views:
                    yield view
            return
        if job is None:
            yield await self.get(job_id)
            return
        seen = -1
        while True:
            async with job.changed:
                await job.changed.wait_for(functools.partial(_moved_on, job, seen))
                seen = job.generation
                view = job.view()
            yield view
            if view.record.state.is_final:
                return

    async def _dispatch(self) -> None:
        """Be one worker slot: take the next job, run it to its end, forget it; forever."""
        while True:
            if self._shared_jobs is None:
                job = await self._queue.get()
            else:
                job = await self._shared_jobs.claim()
            try:
                if not job.record.state.is_final:
                    await self._runner.run(job)
                # Else it was cancelled while it waited (or while its claim fetched the data).
            finally:
                self._runner.release(job)
                self._table.forget(job)


def _moved_on(job: LiveJob, seen: int) -> bool:
    return job.generation != seen
