"""Records the service keeps about models, versions and training jobs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_service.training_contract import TrainingResult


class FeatureKind(enum.StrEnum):
    """How a model treats a feature column."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class JobState(enum.StrEnum):
    """Life cycle of a training job; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the job can no longer change."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class FeatureColumn:
    """One feature column as a model saw it in training."""

    name: str
    kind: FeatureKind
    arrow_type: str
    categories: tuple[str, ...] = ()
    null_count: int = 0


@dataclass(frozen=True)
class Signature:
    """What a model version takes in and gives out."""

    features: tuple[FeatureColumn, ...]
    target_column: str
    target_arrow_type: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Metrics:
    """Holdout classification metrics."""

    accuracy: float
    balanced_accuracy: float
    f1_macro: float
    roc_auc: float
    log_loss: float


@dataclass(frozen=True)
class Curve:
    """A ROC or precision-recall curve of one class against the rest, on the holdout."""

    #: "roc" (x: false-positive rate, y: true-positive rate) or "pr" (x: recall, y: precision).
    kind: str
    class_name: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    #: ROC AUC, or average precision for "pr".
    area: float


@dataclass(frozen=True)
class Evaluation:
    """How a version did on its holdout rows."""

    #: Rows by true class, columns by predicted class, in the signature's class order.
    confusion_matrix: tuple[tuple[int, ...], ...]
    #: Binary: one ROC and one PR curve for the positive class; multiclass: each, per class.
    curves: tuple[Curve, ...]


@dataclass(frozen=True)
class LearningCurve:
    """Losses by iteration as the fit reported them (sampled to a few hundred points)."""

    iterations: tuple[int, ...]
    #: Metric name (e.g. "holdout_Logloss") -> one value per entry of iterations.
    series: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class Timings:
    """Durations of the training stages, in seconds."""

    queue_seconds: float = 0.0
    prepare_seconds: float = 0.0
    fit_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    save_seconds: float = 0.0


#: Where a run's progress stands once the worker has saved the model and the service
#: commits the version (the worker's stages end here, so a bar never goes back).
COMMITTING = 0.98


@dataclass(frozen=True)
class Progress:
    """How far a training run has got."""

    stage: str
    fraction: float
    iteration: int = 0
    total_iterations: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRecord:
    """A model: a stable identity over its versions."""

    model_id: str
    name: str
    description: str
    kind: str
    latest_version: int
    version_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VersionRecord:
    """One immutable trained version of a model: where it came from and what training made.

    Before the store commits it, a record has version 0 and no artifact key; the store
    numbers it and files its artifact.
    """

    model_id: str
    version: int
    kind: str
    #: Every hyperparameter the fit used, defaults included.
    hyperparameters: dict[str, Any]
    #: What the fit produced: signature, metrics, importance, timings, artifact digest, notes.
    training: TrainingResult
    created_at: datetime
    artifact_key: str
    parent_version: int
    dataset_digest: str
    job_id: str
    holdout_fraction: float
    seed: int


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a status code name and a message for the user."""

    code: str
    message: str


@dataclass
class JobRecord:
    """A training job as stored; the live job adds progress on top."""

    job_id: str
    model_id: str
    kind: str
    state: JobState
    parent_version: int
    requested_hyperparameters: dict[str, Any]
    target_column: str
    rows: int
    dataset_digest: str
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: JobError | None = None
    result_version: int = 0
    name: str = ""
    description: str = ""
