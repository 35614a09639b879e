"""What the job manager needs of a training executor: start a run, follow it, stop it.

The job manager owns the queue, the job's states and what watchers see; an executor only
runs one encoded TrainingTask somewhere (a local worker process, a Ray actor) and reports
its progress and its outcome. Both sides speak the training contract's JSON text, so no
executor unpickles anything a request can reach.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ml_service.domain import JobError, Progress
from ml_service.training_contract import TrainingTask

OnProgress = Callable[[Progress], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the encoded TrainingResult, or why there is none."""

    result: str | None = None
    error: JobError | None = None


class Run(Protocol):
    """One training run an executor started."""

    async def wait(self, on_progress: OnProgress) -> Outcome:
        """Relay progress until the run ends; return its outcome."""

    async def stop(self) -> None:
        """Stop the run now (cancel or shutdown); stopping an ended run does nothing."""


class Executor(Protocol):
    """Where training runs happen."""

    #: The name operators choose it by (MLOPS_TRAINING_EXECUTOR).
    name: str

    async def start(self) -> None:
        """Get ready to run jobs (e.g. connect to a cluster)."""

    async def close(self) -> None:
        """Release what start took; runs are stopped by the job manager first."""

    def dataset_location(self, digest: str) -> str:
        """Return where a run of this executor reads the stored dataset with this digest."""

    async def launch(self, job_id: str, task: TrainingTask) -> Run:
        """Start training `task`; the run is already under way when this returns."""
