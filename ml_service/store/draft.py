"""What a caller hands the store to commit a new version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ml_service.domain import Metrics, Signature, Timings, VersionRecord


@dataclass(frozen=True)
class VersionDraft:
    """A trained version before the store numbers it and stores its artifact.

    `parent_version` 0 creates the model, which takes `name`, `description` and `kind`;
    a positive one adds a version to the existing model, whose kind must match.
    """

    model_id: str
    kind: str
    hyperparameters: dict[str, Any]
    signature: Signature
    metrics: Metrics | None
    feature_importance: tuple[tuple[str, float], ...]
    train_rows: int
    holdout_rows: int
    timings: Timings
    library_versions: dict[str, str]
    parent_version: int
    dataset_digest: str
    job_id: str
    holdout_fraction: float
    seed: int
    name: str = ""
    description: str = ""

    def to_record(
        self, version: int, created_at: datetime, artifact_key: str, sha256: str, size: int
    ) -> VersionRecord:
        """Complete the draft with what the store decided."""
        return VersionRecord(
            model_id=self.model_id,
            version=version,
            kind=self.kind,
            hyperparameters=self.hyperparameters,
            signature=self.signature,
            metrics=self.metrics,
            feature_importance=self.feature_importance,
            train_rows=self.train_rows,
            holdout_rows=self.holdout_rows,
            timings=self.timings,
            library_versions=self.library_versions,
            created_at=created_at,
            artifact_key=artifact_key,
            artifact_sha256=sha256,
            artifact_size=size,
            parent_version=self.parent_version,
            dataset_digest=self.dataset_digest,
            job_id=self.job_id,
            holdout_fraction=self.holdout_fraction,
            seed=self.seed,
        )
