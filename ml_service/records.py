"""Rebuild a worker's training result from the JSON it sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml_service.domain import FeatureColumn, FeatureKind, Metrics, Signature, Timings


@dataclass(frozen=True)
class TrainedVersion:
    """What a worker reports about the model it trained."""

    signature: Signature
    metrics: Metrics | None
    feature_importance: tuple[tuple[str, float], ...]
    train_rows: int
    holdout_rows: int
    timings: Timings
    library_versions: dict[str, str]


def signature_from_dict(data: dict[str, Any]) -> Signature:
    """Rebuild a Signature from `dataclasses.asdict` output."""
    return Signature(
        features=tuple(
            FeatureColumn(
                name=c["name"],
                kind=FeatureKind(c["kind"]),
                arrow_type=c["arrow_type"],
                categories=tuple(c["categories"]),
                null_count=c["null_count"],
            )
            for c in data["features"]
        ),
        target_column=data["target_column"],
        target_arrow_type=data["target_arrow_type"],
        classes=tuple(data["classes"]),
    )


def result_from_dict(data: dict[str, Any]) -> TrainedVersion:
    """Rebuild a worker's result from `dataclasses.asdict(TrainingResult)` output."""
    metrics = data.get("metrics")
    return TrainedVersion(
        signature=signature_from_dict(data["signature"]),
        metrics=Metrics(**metrics) if metrics else None,
        feature_importance=tuple((str(n), float(v)) for n, v in data["feature_importance"]),
        train_rows=int(data["train_rows"]),
        holdout_rows=int(data["holdout_rows"]),
        timings=Timings(**data["timings"]),
        library_versions=dict(data["library_versions"]),
    )
