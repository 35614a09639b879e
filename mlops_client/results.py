"""What the client returns: frozen dataclasses built from the service's messages."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from mlops.v1 import types_pb2 as pb


class JobState(enum.StrEnum):
    """Where a training job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        """Whether the job can change no more."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Hyperparameter:
    """One tunable setting of a model kind and the values it accepts."""

    name: str
    type: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelKind:
    """A kind of model the service can train."""

    name: str
    display_name: str
    description: str
    hyperparameters: tuple[Hyperparameter, ...]


@dataclass(frozen=True)
class Feature:
    """One input column as the model saw it in training."""

    name: str
    feature_type: str
    arrow_type: str
    categories: tuple[str, ...] = ()
    null_count: int = 0


@dataclass(frozen=True)
class Signature:
    """What a version takes (features) and gives (one label and a probability per class)."""

    features: tuple[Feature, ...]
    target_column: str
    target_arrow_type: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Metrics:
    """Holdout quality of a version."""

    accuracy: float
    balanced_accuracy: float
    f1_macro: float
    roc_auc: float
    log_loss: float


@dataclass(frozen=True)
class Deleted:
    """What a delete removed: how many versions, and whether the model went with them (a
    model's delete, or the delete of its last version)."""

    versions: int
    model_deleted: bool


@dataclass(frozen=True)
class Model:
    """A trained model: a stable id with one or more versions."""

    model_id: str
    kind: str
    latest_version: int
    version_count: int
    created: datetime | None
    updated: datetime | None
    name: str = ""
    description: str = ""


@dataclass(frozen=True)
class ModelVersion:
    """One immutable trained version of a model."""

    model_id: str
    version: int
    kind: str
    hyperparameters: Mapping[str, Any]
    signature: Signature
    metrics: Metrics | None
    feature_importance: Mapping[str, float]
    train_rows: int
    holdout_rows: int
    library_versions: Mapping[str, str]
    created: datetime | None
    artifact_sha256: str
    artifact_size_bytes: int
    parent_version: int
    dataset_digest: str
    job_id: str
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """MODEL:VERSION, as the command line takes it."""
        return f"{self.model_id}:{self.version}"


@dataclass(frozen=True)
class Progress:
    """How far a job has got; `metrics` holds the latest losses by name."""

    stage: str
    fraction: float
    iteration: int
    total_iterations: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Job:
    """A training run and, once it succeeded, the version it made."""

    job_id: str
    state: JobState
    kind: str
    model_id: str
    parent_version: int
    target_column: str
    rows: int
    hyperparameters: Mapping[str, Any]
    progress: Progress
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    error_code: str = ""
    error_message: str = ""
    result: ModelVersion | None = None


def _time(stamp: timestamp_pb2.Timestamp, present: bool = True) -> datetime | None:
    if not present or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def _struct(message: Any) -> dict[str, Any]:
    values: dict[str, Any] = json_format.MessageToDict(message)
    # Struct numbers are doubles; give whole ones back as ints, as the user wrote them.
    return {
        k: int(v) if isinstance(v, float) and math.isfinite(v) and v.is_integer() else v
        for k, v in values.items()
    }


_HYPERPARAMETER_TYPES = {1: "int", 2: "float", 3: "string", 4: "bool"}
#: A feature's type in the words users give and read it, and as the contract numbers it.
FEATURE_TYPES = {"numeric": pb.FEATURE_TYPE_NUMERIC, "categorical": pb.FEATURE_TYPE_CATEGORICAL}
_FEATURE_TYPE_NAMES = {number: name for name, number in FEATURE_TYPES.items()}
_JOB_STATES = {
    pb.JOB_STATE_QUEUED: JobState.QUEUED,
    pb.JOB_STATE_RUNNING: JobState.RUNNING,
    pb.JOB_STATE_SUCCEEDED: JobState.SUCCEEDED,
    pb.JOB_STATE_FAILED: JobState.FAILED,
    pb.JOB_STATE_CANCELLED: JobState.CANCELLED,
}


def _default_of(h: pb.HyperparameterSpec) -> Any:
    """A hyperparameter's default in its own type: a Value carries 300 as 300.0."""
    value = json_format.MessageToDict(h.default_value)
    if h.type == pb.HYPERPARAMETER_TYPE_INT and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def kind_from(message: pb.ModelKind) -> ModelKind:
    """Convert a ModelKind message."""
    params = tuple(
        Hyperparameter(
            name=h.name,
            type=_HYPERPARAMETER_TYPES.get(h.type, "unknown"),
            default=_default_of(h),
            description=h.description,
            minimum=h.minimum if h.HasField("minimum") else None,
            maximum=h.maximum if h.HasField("maximum") else None,
            exclusive_minimum=h.exclusive_minimum,
            exclusive_maximum=h.exclusive_maximum,
            choices=tuple(h.choices),
        )
        for h in message.hyperparameters
    )
    return ModelKind(message.name, message.display_name, message.description, params)


def model_from(message: pb.Model) -> Model:
    """Convert a Model message."""
    return Model(
        model_id=message.model_id,
        kind=message.kind,
        latest_version=message.latest_version,
        version_count=message.version_count,
        created=_time(message.create_time, message.HasField("create_time")),
        updated=_time(message.update_time, message.HasField("update_time")),
        name=message.name,
        description=message.description,
    )


def signature_from(message: pb.TrainingSignature) -> Signature:
    """Convert a TrainingSignature message."""
    features = tuple(
        Feature(
            f.name,
            _FEATURE_TYPE_NAMES.get(f.feature_type, "unspecified"),
            f.arrow_type,
            tuple(f.categories),
            f.null_count,
        )
        for f in message.features
    )
    return Signature(
        features, message.target_column, message.target_arrow_type, tuple(message.classes)
    )


def version_from(message: pb.ModelVersion) -> ModelVersion:
    """Convert a ModelVersion message."""
    m = message.metrics
    metrics = (
        Metrics(m.accuracy, m.balanced_accuracy, m.f1_macro, m.roc_auc, m.log_loss)
        if message.HasField("metrics")
        else None
    )
    t = message.timings
    return ModelVersion(
        model_id=message.model_id,
        version=message.version,
        kind=message.kind,
        hyperparameters=_struct(message.hyperparameters),
        signature=signature_from(message.signature),
        metrics=metrics,
        feature_importance={f.feature: f.importance for f in message.feature_importance},
        train_rows=message.train_rows,
        holdout_rows=message.holdout_rows,
        library_versions=dict(message.library_versions),
        created=_time(message.create_time, message.HasField("create_time")),
        artifact_sha256=message.artifact_sha256,
        artifact_size_bytes=message.artifact_size_bytes,
        parent_version=message.lineage.parent_version,
        dataset_digest=message.lineage.dataset_digest,
        job_id=message.lineage.job_id,
        timings={
            "queue": t.queue_seconds,
            "prepare": t.prepare_seconds,
            "fit": t.fit_seconds,
            "evaluate": t.evaluate_seconds,
            "save": t.save_seconds,
        },
    )


def job_from(message: pb.TrainingJob) -> Job:
    """Convert a TrainingJob message."""
    p = message.progress
    return Job(
        job_id=message.job_id,
        state=_JOB_STATES.get(message.state, JobState.UNKNOWN),
        kind=message.kind,
        model_id=message.model_id,
        parent_version=message.parent_version,
        target_column=message.target_column,
        rows=message.rows,
        hyperparameters=_struct(message.hyperparameters),
        progress=Progress(p.stage, p.fraction, p.iteration, p.total_iterations, dict(p.metrics)),
        created=_time(message.create_time, message.HasField("create_time")),
        started=_time(message.start_time, message.HasField("start_time")),
        ended=_time(message.end_time, message.HasField("end_time")),
        error_code=message.error.code,
        error_message=message.error.message,
        result=version_from(message.result) if message.HasField("result") else None,
    )
