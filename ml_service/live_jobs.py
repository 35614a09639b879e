"""What the job manager's parts share: a job in this process, its snapshot, and their table.

A `LiveJob` is a job this process queues or runs; readers get `JobView` snapshots of it,
and a change wakes its watchers through `LiveJob.publish`. The `JobTable` holds the live
jobs and, for a while, the ended ones, so readers still see their last progress.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry import context as otel_context
from opentelemetry import trace

from ml_service.domain import JobError, JobRecord, JobState, Progress, VersionRecord
from ml_service.executors import Run
from ml_service.training_contract import TrainingTask

ENDED_KEPT = 256
# What a job ends with when its replica stopped holding it: the replica died or lost the
# database for longer than the lease.
LEASE_LAPSED = JobError("ABORTED", "the replica running it stopped")


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

    async def publish(self) -> None:
        """Wake every watcher: the job changed."""
        async with self.changed:
            self.generation += 1
            self.changed.notify_all()


class JobTable:
    """The jobs this process queues or runs, and the ones that ended here lately."""

    def __init__(self) -> None:
        self.live: dict[str, LiveJob] = {}
        # Recently ended jobs keep their last progress for readers; older ones come from the store.
        self.ended: collections.OrderedDict[str, LiveJob] = collections.OrderedDict()

    def find(self, job_id: str) -> LiveJob | None:
        """Return the job, live or lately ended, when this process holds it."""
        return self.live.get(job_id) or self.ended.get(job_id)

    def count(self, state: JobState) -> int:
        """Count the live jobs in a state."""
        return sum(1 for job in self.live.values() if job.record.state is state)

    def forget(self, job: LiveJob) -> None:
        """Move a job that left its dispatcher among the ended ones."""
        self.live.pop(job.record.job_id, None)
        self.ended[job.record.job_id] = job
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)


def final_progress(record: JobRecord) -> Progress:
    """Return the progress a reader sees of a job known only by its stored row."""
    if record.state is JobState.SUCCEEDED:
        return Progress(stage="succeeded", fraction=1.0)
    return Progress(stage=record.state.value, fraction=0.0)
