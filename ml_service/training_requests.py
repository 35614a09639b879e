"""Training requests as clients send them, the rules on them, and the job they resolve to."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_service import dataset
from ml_service.config import Settings
from ml_service.domain import FeatureKind, VersionRecord
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.kinds import Kind
from ml_service.training_contract import TrainingResources

DEFAULT_HOLDOUT = 0.2
MAX_NAME = 200
MAX_DESCRIPTION = 2000


@dataclass(frozen=True)
class ResourceRequest:
    """What a client asks one job to reserve; None takes the service's default."""

    cpus: float | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class TrainRequest:
    """What a client asks to train, before the data arrives."""

    kind: str
    target_column: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    feature_columns: tuple[str, ...] = ()
    feature_types: Mapping[str, FeatureKind] = field(default_factory=dict)
    holdout_fraction: float | None = None
    seed: int | None = None
    allow_many_classes: bool = False
    resources: ResourceRequest = ResourceRequest()


@dataclass(frozen=True)
class RetrainRequest:
    """What a client asks to change when training a model's next version."""

    model_id: str
    parent_version: int = 0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    holdout_fraction: float | None = None
    seed: int | None = None
    allow_many_classes: bool = False
    resources: ResourceRequest = ResourceRequest()


def check_holdout(value: float | None, default: float) -> float:
    """Return the holdout fraction, or raise naming the field."""
    if value is None:
        return default
    if not (math.isfinite(value) and 0.0 <= value < 0.9):
        raise InvalidArgument.field(
            "holdout_fraction", f"must be at least 0 and below 0.9, got {value}"
        )
    return value


def resolve_resources(request: ResourceRequest, settings: Settings) -> TrainingResources:
    """Return what the job reserves: the request within the limits, or the defaults."""
    violations = []
    cpus = default_cpus(settings)
    if request.cpus is not None:
        cpus = request.cpus
        if not (math.isfinite(cpus) and cpus > 0):
            violations.append(FieldViolation("resources.cpus", f"must be positive, got {cpus:g}"))
        elif cpus > settings.max_job_cpus:
            violations.append(
                FieldViolation(
                    "resources.cpus",
                    f"asks for {cpus:g} CPUs; this service allows at most"
                    f" {settings.max_job_cpus:g} per job",
                )
            )
    memory_mb = settings.ray_memory_mb if settings.training_executor == "ray" else 0
    if request.memory_mb is not None:
        memory_mb = request.memory_mb
        if memory_mb <= 0:
            violations.append(
                FieldViolation("resources.memory_mb", f"must be positive, got {memory_mb}")
            )
        elif settings.training_executor != "ray":
            # A local worker shares this machine's memory with the service and cannot
            # reserve any: accepting the number would promise what nothing enforces.
            violations.append(
                FieldViolation(
                    "resources.memory_mb",
                    "cannot be reserved: this service trains in local worker processes,"
                    " which share the machine's memory (only the Ray executor reserves it)",
                )
            )
        elif memory_mb > settings.max_job_memory_mb:
            violations.append(
                FieldViolation(
                    "resources.memory_mb",
                    f"asks for {memory_mb} MiB; this service allows at most"
                    f" {settings.max_job_memory_mb} MiB per job",
                )
            )
    if violations:
        raise InvalidArgument.of(violations)
    return TrainingResources(cpus=cpus, memory_mb=memory_mb)


def default_cpus(settings: Settings) -> float:
    """Return the CPUs of a job that asks for none."""
    if settings.training_executor == "ray":
        return settings.ray_cpus
    # Concurrent local trainings share the cores instead of oversubscribing them.
    return float(max(1, (os.cpu_count() or 1) // settings.max_concurrent_trainings))


@dataclass(frozen=True)
class NewJob:
    """A training request resolved and checked, before its data arrives."""

    kind: Kind
    params: dict[str, Any]
    requested: dict[str, Any]
    target: str
    feature_columns: tuple[str, ...]
    feature_types: Mapping[str, FeatureKind]
    holdout: float
    seed: int
    allow_many_classes: bool
    model_id: str
    name: str
    description: str
    resources: TrainingResources
    #: The version a retrain starts from; None for a new model.
    parent: VersionRecord | None = None


def had_many_classes(parent: VersionRecord) -> bool:
    """Whether a parent version's target needed allow_many_classes, so its retrain does."""
    classes = len(parent.training.signature.classes)
    rows = parent.training.train_rows + parent.training.holdout_rows
    return classes > dataset.MANY_CLASSES or (
        classes >= dataset.FEW_ROWS_CLASSES and rows < dataset.MIN_ROWS_PER_CLASS * classes
    )


def check_text(name: str, description: str) -> list[FieldViolation]:
    """Return what is wrong with a model's name and description."""
    violations = []
    if len(name) > MAX_NAME:
        violations.append(FieldViolation("name", f"is longer than {MAX_NAME} characters"))
    if len(description) > MAX_DESCRIPTION:
        violations.append(
            FieldViolation("description", f"is longer than {MAX_DESCRIPTION} characters")
        )
    return violations
