"""The runtime of the test-only 'majority' kind: predicts the training class frequencies."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ml_service.domain import Progress
from ml_service.kinds.base import FitInput


def library_versions() -> dict[str, str]:
    """Return numpy's version, the only library this kind uses."""
    return {"numpy": np.__version__}


def fit(data: FitInput) -> list[float]:
    """Return each class's smoothed share of the training rows."""
    smoothing = float(data.params["smoothing"])  # type: ignore[arg-type]
    counts = np.bincount(data.y, minlength=data.n_classes) + smoothing
    data.report(Progress("fitting", 1.0, iteration=1, total_iterations=1))
    return [float(share) for share in counts / counts.sum()]


def predict_proba(model: object, features: pa.Table) -> npt.NDArray[np.float64]:
    """Return the same shares for every row."""
    return np.tile(np.asarray(model, dtype=np.float64), (features.num_rows, 1))


def feature_importance(model: object, names: Sequence[str]) -> list[float]:
    """Return zero for every column: no column matters to this kind."""
    return [0.0] * len(names)


def save(model: object, path: str) -> None:
    """Write the shares as JSON."""
    with open(path, "w", encoding="utf-8") as file:
        json.dump(model, file)


def load(path: str) -> list[float]:
    """Read the shares back."""
    with open(path, encoding="utf-8") as file:
        shares: list[float] = json.load(file)
    return shares


def fit_notes(model: object) -> list[str]:
    """Say that this model ignores its inputs."""
    return ["this model ignores its inputs"]
