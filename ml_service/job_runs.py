"""One job's run: through an executor, progress relayed, its result committed, every failure ended.

Where a job trains is the executor's business (ml_service.executors: local worker
processes by default, or Ray actors); this module starts the run, publishes the progress it
reports (and, in shared mode, records it for other replicas' watchers), hands the result
to the commit, and turns whatever went wrong into the job's final state in the user's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Awaitable, Callable

from ml_service import training_contract
from ml_service.domain import COMMITTING, JobError, JobState, Progress, VersionRecord
from ml_service.errors import NoSpace, Unavailable
from ml_service.executors import Executor
from ml_service.final_states import FinalStates
from ml_service.live_jobs import LEASE_LAPSED, LiveJob, utcnow
from ml_service.store import Store
from ml_service.store.errors import LeaseLost
from ml_service.telemetry import Telemetry
from ml_service.training_contract import TrainingResult

log = logging.getLogger(__name__)

SAVE_FAILED = "no space left to save the model version"
# Shared mode: how often progress is recorded; with the readers' poll it bounds a remote
# watcher's lag to well under a second.
PROGRESS_SAVE_SECONDS = 0.3

Commit = Callable[[LiveJob, TrainingResult], Awaitable[VersionRecord]]


class JobRunner:
    """Run jobs through the executor and commit what they trained."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        commit: Commit,
        finals: FinalStates,
        telemetry: Telemetry,
    ) -> None:
        self._store = store
        # Shared mode: other replicas read our jobs' rows, so they carry progress.
        self._shared = store.shared
        self._executor = executor
        self._commit = commit
        self._finals = finals
        self._telemetry = telemetry

    async def run(self, job: LiveJob) -> None:
        """Run a job to its final state; a failure in the server fails the job, not the caller."""
        try:
            await self._run(job)
        except asyncio.CancelledError:
            raise
        except NoSpace as exc:
            log.error("job %s failed: %s", job.record.job_id, exc.message)
            error = JobError("RESOURCE_EXHAUSTED", exc.message)
            await self._finals.finish(job, JobState.FAILED, error)
        except Unavailable as exc:
            # The database or object store went away mid-job: the user's words, not INTERNAL.
            log.error("job %s failed: %s", job.record.job_id, exc.message)
            error = JobError("UNAVAILABLE", exc.message)
            await self._finals.finish(job, JobState.FAILED, error)
        except Exception:
            log.exception("job %s crashed in the server", job.record.job_id)
            await self._finals.finish(job, JobState.FAILED, JobError("INTERNAL", "internal error"))

    async def stop(self, job: LiveJob) -> None:
        """Stop the job's run, if it has one."""
        if job.run is not None:
            await job.run.stop()

    def release(self, job: LiveJob) -> None:
        """Drop the job's run and delete its scratch files (a committed artifact was moved
        into the store)."""
        # The ended job stays readable in the job table for a while; a local run would keep
        # its worker's Process there, and with it two pipes to the forkserver.
        job.run = None
        if job.task.artifact_path:
            with contextlib.suppress(FileNotFoundError):
                os.remove(job.task.artifact_path)
        if self._shared is not None and job.task.dataset_path:
            self._store.release_dataset(job.task.dataset_path)

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
        await job.publish()

        if job.record.state.is_final:
            return  # cancelled while it was being prepared
        job.run = await self._executor.launch(job.record.job_id, job.task)
        if job.record.state.is_final:
            # Cancelled while the worker started: the cancel found no run to stop, and the
            # worker would train to the end in a slot no other job could use.
            await job.run.stop()
        outcome = await job.run.wait(functools.partial(self._relay, job))
        if job.record.state.is_final:
            return
        if outcome.error is not None:
            await self._finals.finish(job, JobState.FAILED, outcome.error)
        else:
            await self._save(job, outcome.result or "")

    async def _save(self, job: LiveJob, result_text: str) -> None:
        """Commit what the run trained, or fail the job saying why it was not saved."""
        # Keep the iteration count: a watcher that missed the last fitting update still
        # learns how many iterations ran.
        job.progress = dataclasses.replace(job.progress, stage="saving", fraction=COMMITTING)
        job.span.add_event("saving")
        await job.publish()
        try:
            result = training_contract.decode_result(result_text)
            job.result = await self._commit(job, result)
        except NoSpace as exc:
            log.error("job %s could not save its version: %s", job.record.job_id, exc.message)
            error = JobError("RESOURCE_EXHAUSTED", SAVE_FAILED)
            await self._finals.finish(job, JobState.FAILED, error)
            return
        except LeaseLost:
            # Another replica may already have failed the job; its version must not
            # appear after that, and did not.
            log.warning("job %s lost its lease; its version was not saved", job.record.job_id)
            await self._finals.finish(job, JobState.FAILED, LEASE_LAPSED)
            return
        except Unavailable as exc:
            # Nothing was committed: the artifact or its row did not land, so no version
            # is listed; the job says which part of the store did not answer.
            log.error("job %s could not save its version: %s", job.record.job_id, exc.message)
            message = f"the model version could not be saved: {exc.message}"
            await self._finals.finish(job, JobState.FAILED, JobError("UNAVAILABLE", message))
            return
        job.record.result_version = job.result.version
        await self._finals.finish(job, JobState.SUCCEEDED, None)

    async def _relay(self, job: LiveJob, progress: Progress) -> None:
        """Publish a run's progress to watchers (and, in shared mode, other replicas)."""
        if job.record.state.is_final:
            return
        stage = job.progress.stage
        job.progress = progress
        if progress.stage != stage:
            # The run's stages become events of the job's span, timed here.
            job.span.add_event(progress.stage)
        await job.publish()
        await self._share_progress(job)

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
