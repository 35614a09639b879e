"""The training contract: the task the core hands a worker, and the result that comes back.

Light on purpose (no ML library is imported): the core builds a TrainingTask, the job
manager sends it, the worker runs it, and the store commits the TrainingResult as part of
the version record. Both cross the process boundary as JSON, encoded and decoded only here;
decoding checks every field and type, so a worker trusts a task that decodes (the core has
already checked the request and the data) and the server trusts a result that decodes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from ml_service.domain import (
    Evaluation,
    FeatureKind,
    LearningCurve,
    Metrics,
    Signature,
    Timings,
)

T = TypeVar("T")


@dataclass(frozen=True)
class TrainingResources:
    """What one job reserves where it trains, as the core resolved and checked it."""

    #: CPUs; the job's library threads are this rounded up.
    cpus: float
    #: Memory in MiB; 0 reserves none.
    memory_mb: int = 0


def threads_for(resources: TrainingResources) -> int:
    """Return the library threads of a job with these resources: its CPUs rounded up."""
    return max(1, math.ceil(resources.cpus))


@dataclass(frozen=True)
class TrainingTask:
    """What a worker trains: every choice made and checked by the core."""

    kind: str
    #: Every hyperparameter of the kind, resolved and checked.
    hyperparameters: dict[str, Any]
    #: The stored Parquet training table, on the disk of the process that runs the job.
    #: Shared mode: empty in a queued job's row; the replica that claims it fills it in.
    dataset_path: str
    target_column: str
    #: The feature columns in training order, each with how it is used.
    features: tuple[tuple[str, FeatureKind], ...]
    holdout_fraction: float
    seed: int
    #: Where the worker writes the fitted model (placed like dataset_path).
    artifact_path: str
    #: Threads for the library (CatBoost, BLAS); None uses every core.
    threads: int | None = None
    #: What the job reserves; None (a job queued before jobs asked for resources) takes
    #: the executor's defaults.
    resources: TrainingResources | None = None


@dataclass(frozen=True)
class TrainingResult:
    """What a fit produced besides the artifact file; part of every version record."""

    signature: Signature
    metrics: Metrics | None
    #: Each feature column's share of importance, summing to 100, most important first.
    feature_importance: tuple[tuple[str, float], ...]
    train_rows: int
    holdout_rows: int
    timings: Timings
    library_versions: dict[str, str]
    #: Of the artifact as the worker wrote and synced it; the store keeps it and every
    #: load checks the file against it.
    artifact_sha256: str
    artifact_size: int
    #: Things the user should know about the fit, e.g. that the solver did not converge.
    notes: tuple[str, ...] = field(default=())
    #: Confusion matrix and curves on the holdout; None without a holdout.
    evaluation: Evaluation | None = None
    #: Losses by iteration; None when the fit reported none.
    learning_curve: LearningCurve | None = None


class ContractError(Exception):
    """A task or result that does not decode: a bug or a foreign sender, never user input."""


def encode(value: TrainingTask | TrainingResult) -> str:
    """Return the JSON text of a task or a result."""
    # NaN stays NaN: a holdout without some class has an undefined roc_auc.
    return json.dumps(dataclasses.asdict(value), allow_nan=True, separators=(",", ":"))


def decode_task(text: str) -> TrainingTask:
    """Decode and check a task that encode wrote."""
    return _decode(_TASK, text)


def decode_result(text: str) -> TrainingResult:
    """Decode and check a result that encode wrote."""
    return _decode(_RESULT, text)


def signature_from_dict(data: dict[str, Any]) -> Signature:
    """Check and build a signature from decoded JSON."""
    try:
        return _SIGNATURE.validate_python(data)
    except ValidationError as exc:
        raise ContractError(f"not a signature: {exc}") from None


def evaluation_from_dict(data: dict[str, Any]) -> Evaluation:
    """Check and build a holdout evaluation from decoded JSON."""
    try:
        return _EVALUATION.validate_python(data)
    except ValidationError as exc:
        raise ContractError(f"not an evaluation: {exc}") from None


def learning_curve_from_dict(data: dict[str, Any]) -> LearningCurve:
    """Check and build a learning curve from decoded JSON."""
    try:
        return _LEARNING_CURVE.validate_python(data)
    except ValidationError as exc:
        raise ContractError(f"not a learning curve: {exc}") from None


def _decode(adapter: TypeAdapter[T], text: str) -> T:
    try:
        return adapter.validate_python(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise ContractError(f"not a valid message: {exc}") from None


_TASK = TypeAdapter(TrainingTask)
_RESULT = TypeAdapter(TrainingResult)
_SIGNATURE = TypeAdapter(Signature)
_EVALUATION = TypeAdapter(Evaluation)
_LEARNING_CURVE = TypeAdapter(LearningCurve)
