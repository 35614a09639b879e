"""Training requests as clients send them, the rules on them, and the job they resolve to."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_service import dataset
from ml_service.domain import FeatureKind, VersionRecord
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.kinds import Kind

DEFAULT_HOLDOUT = 0.2
MAX_NAME = 200
MAX_DESCRIPTION = 2000


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


@dataclass(frozen=True)
class RetrainRequest:
    """What a client asks to change when training a model's next version."""

    model_id: str
    parent_version: int = 0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    holdout_fraction: float | None = None
    seed: int | None = None
    allow_many_classes: bool = False


def check_holdout(value: float | None, default: float) -> float:
    """Return the holdout fraction, or raise naming the field."""
    if value is None:
        return default
    if not (math.isfinite(value) and 0.0 <= value < 0.9):
        raise InvalidArgument.field(
            "holdout_fraction", f"must be at least 0 and below 0.9, got {value}"
        )
    return value


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
