"""Training jobs: a bounded queue, one executor run per running job, progress and cancel.

Where a job trains is the executor's business (ml_service.executors: local worker
processes by default, or Ray actors); this module owns the queue, the states and what
watchers see.

Embedded, the queue is in memory and this process runs what it accepted. Shared, the queue
is the jobs table: a job is stored with its encoded task, each free worker slot of every
replica claims the oldest waiting one, and the replica that claimed a job alone records
its end, and commits its version only while it still holds the job's lease.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry import context as otel_context
from opentelemetry import trace

from ml_service import training_contract
from ml_service.domain import JobError, JobRecord, JobState, Progress, VersionRecord
from ml_service.errors import (
    FailedPrecondition,
    NoSpace,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from ml_service.executors import Executor, Run
from ml_service.executors.local import LocalExecutor
from ml_service.kinds import get_kind
from ml_service.store import Store
from ml_service.store.errors import LeaseLost
from ml_service.telemetry import Telemetry
from ml_service.training_contract import TrainingResult, TrainingTask

log = logging.getLogger(__name__)

ENDED_KEPT = 256
QUEUE_RETRY_SECONDS = 5.0
# Waits between attempts to store a job's final state; after the last, it is kept in memory.
SAVE_RETRY_SECONDS = (0.1, 0.5, 2.0)
SAVE_FAILED = "no space left to save the model version"
# Shared mode: how often progress is recorded and other replicas' rows are read; together
# they bound a remote watcher's lag to well under a second.
PROGRESS_SAVE_SECONDS = 0.3
SHARED_POLL_SECONDS = 0.25
CANCEL_WAIT_SECONDS = 5.0
# What a job ends with when its replica stopped holding it: the replica died or lost the
# database for longer than the lease.
LEASE_LAPSED = JobError("ABORTED", "the replica running it stopped")

Commit = Callable[["LiveJob", TrainingResult], Awaitable[VersionRecord]]


def utcnow() -> datetime:
    """Return the current time, timezone-aware."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobView:
    """A consistent snapshot of a job for readers."""

    record: JobRecord
    progress: Progress
    result: VersionRecord | None = None


@dataclass
class LiveJob:
    """A job this process is queueing or running."""

    record: JobRecord
    task: TrainingTask
    progress: Progress = field(default_factory=lambda: Progress(stage="queued", fraction=0.0))
    result: VersionRecord | None = None
    generation: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    run: Run | None = None
    #: The trace of the call that submitted the job; its run is a span of that trace.
    trace_context: otel_context.Context | None = None
    span: trace.Span = trace.INVALID_SPAN
    progress_saved_at: float = float("-inf")

    def view(self) -> JobView:
        """Snapshot the job; the record is copied so later changes do not leak in."""
        return JobView(dataclasses.replace(self.record), self.progress, self.result)


class JobManager:
    """Queue training jobs, run them in worker processes and publish their progress."""

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
        # Shared mode: other replicas read our jobs' rows, so they carry a lease and progress.
        self._shared = store.shared
        self._owner = owner
        self._lease = lease_seconds
        self._commit = commit
        self._max_queued = max_queued
        self._executor = executor or LocalExecutor(store.dataset_path, cancel_grace_seconds)
        self._jobs: dict[str, LiveJob] = {}
        # Recently ended jobs keep their last progress for readers; older ones come from the store.
        self._ended: collections.OrderedDict[str, LiveJob] = collections.OrderedDict()
        self._queue: asyncio.Queue[LiveJob] = asyncio.Queue()
        # Shared mode: set when this replica queued a job, so an idle slot claims at once
        # instead of at its next poll.
        self._wake = asyncio.Event()
        # Shared mode: the trace of each call that queued a job here, for when this replica
        # also claims it (another replica's run starts a trace of its own).
        self._queued_traces: collections.OrderedDict[str, otel_context.Context] = (
            collections.OrderedDict()
        )
        self._slots = max_concurrent
        # Final states the store refused to record, by job id: served from here, saved later.
        self._unsaved: dict[str, JobRecord] = {}
        self._dispatchers: list[asyncio.Task[None]] = []
        self._telemetry = telemetry or Telemetry()
        metrics = self._telemetry.metrics
        metrics.gauge_from(metrics.jobs_queued, lambda: self._count(JobState.QUEUED))
        metrics.gauge_from(metrics.jobs_running, lambda: self._count(JobState.RUNNING))

    def _count(self, state: JobState) -> int:
        return sum(1 for job in self._jobs.values() if job.record.state is state)

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
            task.cancel()
        for task in self._dispatchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in list(self._jobs.values()):
            if not job.record.state.is_final:
                await self._finish(job, JobState.FAILED, JobError("ABORTED", "server shut down"))
                await self._stop_run(job)
        # Last chance: a row left `running` would read "interrupted by a restart" next time.
        await self._save_unsaved()
        for record in self._unsaved.values():
            log.error(
                "job %s ended %s, but the store could not record it",
                record.job_id,
                record.state.value,
            )
        await self._executor.close()

    def dataset_location(self, digest: str) -> str:
        """Return where a run reads a stored dataset: it depends on where runs happen."""
        return self._executor.dataset_location(digest)

    async def active_job_for_model(self, model_id: str) -> str | None:
        """Return the id of a queued or running job that writes to the model, if any."""
        for job in self._jobs.values():
            if job.record.model_id == model_id and not job.record.state.is_final:
                return job.record.job_id
        if self._shared is not None:
            # Queued jobs and other replicas' running ones are only rows.
            return await asyncio.to_thread(self._shared.active_job_for_model, model_id)
        return None

    async def check_room(self) -> None:
        """Refuse a new job now when the queue is full, before its data is uploaded."""
        if self._shared is None:
            self.check_capacity()
        else:
            await asyncio.to_thread(
                self._shared.check_room, self._max_queued, self._owner, self._slots
            )

    def check_capacity(self) -> int:
        """Refuse a new job now when this process's queue is full (embedded mode).

        Return how many of this process's worker slots are free.
        """
        states = [j.record.state for j in self._jobs.values()]
        queued = states.count(JobState.QUEUED)
        # A job that a free worker slot will take at once does not wait in the queue.
        free_slots = max(0, self._slots - states.count(JobState.RUNNING))
        if queued >= self._max_queued + free_slots:
            raise ResourceExhausted(
                f"the training queue is full ({self._max_queued} jobs waiting); retry later",
                retry_after_seconds=QUEUE_RETRY_SECONDS,
            )
        return free_slots

    def local_job_ids(self) -> list[str]:
        """Return the ids of the unfinished jobs this process queues or runs."""
        return [j for j, job in self._jobs.items() if not job.record.state.is_final]

    async def _shared_view(self, job_id: str) -> JobView:
        """Read a job another replica runs (or ran), with its last recorded progress."""
        assert self._shared is not None
        record = await asyncio.to_thread(self._store.get_job, job_id)
        progress = await asyncio.to_thread(self._shared.progress, job_id)
        if record.state.is_final or progress is None:
            return JobView(record, _final_progress(record))
        return JobView(record, Progress(**progress))

    async def submit(self, record: JobRecord, task: TrainingTask) -> JobView:
        """Queue a job; refuse it when the queue is full."""
        if self._shared is not None:
            return await self._enqueue(record, task)
        # Check and register with no await between them: concurrent submissions that all
        # passed the check before any registered would overfill the queue.
        self.check_capacity()
        job = LiveJob(record=record, task=task, trace_context=otel_context.get_current())
        self._jobs[record.job_id] = job
        try:
            await asyncio.to_thread(self._store.insert_job, record)
        except BaseException:
            self._jobs.pop(record.job_id, None)
            raise
        self._queue.put_nowait(job)
        return job.view()

    async def _enqueue(self, record: JobRecord, task: TrainingTask) -> JobView:
        """Shared mode: store the job and its task for whichever replica has a free worker."""
        assert self._shared is not None
        # Before the insert: a polling slot of ours may claim the row before it returns.
        self._queued_traces[record.job_id] = otel_context.get_current()
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

    async def get(self, job_id: str) -> JobView:
        """Return the live job, or the stored one once it has left this process."""
        job = self._jobs.get(job_id) or self._ended.get(job_id)
        if job is not None:
            return job.view()
        record = self._unsaved.get(job_id)
        if record is None and self._shared is not None:
            return await self._shared_view(job_id)
        if record is None:
            record = await asyncio.to_thread(self._store.get_job, job_id)
        return JobView(record, _final_progress(record))

    def live_view(self, job_id: str) -> JobView | None:
        """Return the job's snapshot when this process holds it."""
        job = self._jobs.get(job_id) or self._ended.get(job_id)
        return job.view() if job is not None else None

    async def cancel(self, job_id: str) -> JobView:
        """Cancel a queued or running job; a final job cannot be cancelled."""
        job = self._jobs.get(job_id)
        if job is None and self._shared is not None:
            return await self._cancel_elsewhere(job_id)
        if job is None or job.record.state.is_final:
            state = job.record.state if job else (await self.get(job_id)).record.state
            raise FailedPrecondition(
                f"job '{job_id}' has already ended ({state.value}); nothing to cancel"
            )
        await self._finish(job, JobState.CANCELLED, None)
        await self._stop_run(job)
        return job.view()

    async def abandon(self, job_id: str) -> None:
        """Stop a job another replica failed as lapsed: its work can no longer be committed."""
        job = self._jobs.get(job_id)
        if job is None or job.record.state.is_final:
            return
        log.warning("job %s was failed elsewhere as lapsed; stopping its worker", job_id)
        await self._finish(job, JobState.FAILED, LEASE_LAPSED)
        await self._stop_run(job)

    async def _cancel_elsewhere(self, job_id: str) -> JobView:
        """Ask the replica that runs a job to stop it, and wait a little to report the end."""
        assert self._shared is not None
        if await asyncio.to_thread(self._shared.cancel_queued, job_id, utcnow()):
            log.info("job %s cancelled before any replica claimed it", job_id)
            return await self._shared_view(job_id)
        if not await asyncio.to_thread(self._shared.request_cancel, job_id):
            state = (await self.get(job_id)).record.state
            raise FailedPrecondition(
                f"job '{job_id}' has already ended ({state.value}); nothing to cancel"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_SECONDS
        view = await self._shared_view(job_id)
        while not view.record.state.is_final and loop.time() < deadline:
            await asyncio.sleep(SHARED_POLL_SECONDS)
            view = await self._shared_view(job_id)
        return view

    async def watch(self, job_id: str) -> AsyncIterator[JobView]:
        """Yield the job now and after every change until it reaches a final state."""
        job = self._jobs.get(job_id)
        if job is None and self._shared is not None:
            # Another replica runs it: follow its row. Polling, not LISTEN/NOTIFY: a watcher
            # costs one indexed read per interval, and needs no connection of its own.
            last: JobView | None = None
            while True:
                view = await self._shared_view(job_id)
                if last is None or (view.record, view.progress) != (last.record, last.progress):
                    yield view
                    last = view
                if view.record.state.is_final:
                    return
                await asyncio.sleep(SHARED_POLL_SECONDS)
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

    async def _publish(self, job: LiveJob) -> None:
        async with job.changed:
            job.generation += 1
            job.changed.notify_all()

    async def _finish(self, job: LiveJob, state: JobState, error: JobError | None) -> None:
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
            await self._publish(job)
        log.info("job %s %s", job.record.job_id, state.value)

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

    async def _stop_run(self, job: LiveJob) -> None:
        if job.run is not None:
            await job.run.stop()

    async def _dispatch(self) -> None:
        while True:
            job = await (self._queue.get() if self._shared is None else self._claim())
            if job.record.state.is_final:
                # Cancelled while it waited (or while its claim fetched the data).
                self._release(job)
                self._forget(job)
                continue
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except NoSpace as exc:
                log.error("job %s failed: %s", job.record.job_id, exc.message)
                error = JobError("RESOURCE_EXHAUSTED", exc.message)
                await self._finish(job, JobState.FAILED, error)
            except Unavailable as exc:
                # The database or object store went away mid-job: the user's words, not INTERNAL.
                log.error("job %s failed: %s", job.record.job_id, exc.message)
                error = JobError("UNAVAILABLE", exc.message)
                await self._finish(job, JobState.FAILED, error)
            except Exception:
                log.exception("job %s crashed in the server", job.record.job_id)
                await self._finish(job, JobState.FAILED, JobError("INTERNAL", "internal error"))
            finally:
                self._release(job)
                self._forget(job)

    def _release(self, job: LiveJob) -> None:
        """Delete the job's scratch files: a committed artifact was moved into the store."""
        if job.task.artifact_path:
            with contextlib.suppress(FileNotFoundError):
                os.remove(job.task.artifact_path)
        if self._shared is not None and job.task.dataset_path:
            self._store.release_dataset(job.task.dataset_path)

    async def _claim(self) -> LiveJob:
        """Shared mode: wait until this slot takes the oldest job any replica queued."""
        assert self._shared is not None
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SHARED_POLL_SECONDS)

    async def _claimed(self, record: JobRecord, text: str) -> LiveJob:
        """Make a claimed row a live job, its task placed on this replica's files."""
        trace_context = self._queued_traces.pop(record.job_id, None)
        job = LiveJob(record=record, task=_UNPLACED, trace_context=trace_context)
        self._jobs[record.job_id] = job
        log.info("job %s claimed", record.job_id)
        try:
            task = training_contract.decode_task(text)
            # The accepting replica's paths mean nothing here: read the data where this
            # replica's runs read it (a local copy, or the bucket for Ray), write the artifact
            # to its own scratch space.
            dataset_path = await asyncio.to_thread(self.dataset_location, record.dataset_digest)
            job.task = dataclasses.replace(
                task,
                dataset_path=dataset_path,
                artifact_path=self._store.scratch_path(get_kind(task.kind).artifact_suffix),
            )
        except NotFound:
            message = "the job's training data is no longer in the store"
            await self._finish(job, JobState.FAILED, JobError("FAILED_PRECONDITION", message))
        except Unavailable as exc:
            await self._finish(job, JobState.FAILED, JobError("UNAVAILABLE", exc.message))
        except Exception:
            log.exception("job %s could not be prepared", record.job_id)
            await self._finish(job, JobState.FAILED, JobError("INTERNAL", "internal error"))
        return job

    def _forget(self, job: LiveJob) -> None:
        self._jobs.pop(job.record.job_id, None)
        self._ended[job.record.job_id] = job
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)

    async def _run(self, job: LiveJob) -> None:
        if job.record.state is not JobState.RUNNING:
            # A claimed job (shared mode) was marked running by its claim.
            job.record.state = JobState.RUNNING
            job.record.started_at = utcnow()
        if self._telemetry.tracing:
            job.span = self._telemetry.tracer.start_span(
                "training.job",
                context=job.trace_context,
                attributes={"mlops.job.id": job.record.job_id, "mlops.model.kind": job.record.kind},
            )
        job.progress = Progress(stage="preparing", fraction=0.0)
        job.span.add_event("preparing")
        if self._shared is None:
            await asyncio.to_thread(self._store.update_job, job.record)
        await self._publish(job)

        job.run = await self._executor.launch(job.record.job_id, job.task)
        outcome = await job.run.wait(functools.partial(self._relay, job))
        if job.record.state.is_final:
            return
        if outcome.error is not None:
            await self._finish(job, JobState.FAILED, outcome.error)
        else:
            # Keep the iteration count: a watcher that missed the last fitting update still
            # learns how many iterations ran.
            job.progress = dataclasses.replace(job.progress, stage="saving", fraction=0.98)
            job.span.add_event("saving")
            await self._publish(job)
            try:
                result = training_contract.decode_result(outcome.result or "")
                job.result = await self._commit(job, result)
            except NoSpace as exc:
                log.error("job %s could not save its version: %s", job.record.job_id, exc.message)
                error = JobError("RESOURCE_EXHAUSTED", SAVE_FAILED)
                await self._finish(job, JobState.FAILED, error)
                return
            except LeaseLost:
                # Another replica may already have failed the job; its version must not
                # appear after that, and did not.
                log.warning("job %s lost its lease; its version was not saved", job.record.job_id)
                await self._finish(job, JobState.FAILED, LEASE_LAPSED)
                return
            except Unavailable as exc:
                # Nothing was committed: the artifact or its row did not land, so no version
                # is listed; the job says which part of the store did not answer.
                log.error("job %s could not save its version: %s", job.record.job_id, exc.message)
                message = f"the model version could not be saved: {exc.message}"
                await self._finish(job, JobState.FAILED, JobError("UNAVAILABLE", message))
                return
            job.record.result_version = job.result.version
            await self._finish(job, JobState.SUCCEEDED, None)

    async def _share_progress(self, job: LiveJob) -> None:
        """Record progress for other replicas' watchers, at most every PROGRESS_SAVE_SECONDS."""
        if self._shared is None:
            return
        now = asyncio.get_running_loop().time()
        if now - job.progress_saved_at < PROGRESS_SAVE_SECONDS:
            return
        job.progress_saved_at = now
        try:
            await asyncio.to_thread(
                self._shared.save_progress, job.record.job_id, dataclasses.asdict(job.progress)
            )
        except Exception:
            # Progress is a courtesy to watchers; the training goes on without it.
            log.warning("could not record the progress of job %s", job.record.job_id)

    async def _relay(self, job: LiveJob, progress: Progress) -> None:
        """Publish a run's progress to watchers (and, in shared mode, other replicas)."""
        if job.record.state.is_final:
            return
        stage = job.progress.stage
        job.progress = progress
        if progress.stage != stage:
            # The run's stages become events of the job's span, timed here.
            job.span.add_event(progress.stage)
        await self._publish(job)
        await self._share_progress(job)


# Stands for a claimed job's task until it is decoded and placed; never run.
_UNPLACED = TrainingTask("", {}, "", "", (), 0.0, 0, "")


def _moved_on(job: LiveJob, seen: int) -> bool:
    return job.generation != seen


def _final_progress(record: JobRecord) -> Progress:
    if record.state is JobState.SUCCEEDED:
        return Progress(stage="succeeded", fraction=1.0)
    return Progress(stage=record.state.value, fraction=0.0)
