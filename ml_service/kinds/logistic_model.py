"""The logistic-regression runtime: served from the artifact's arrays, fitted with scikit-learn.

Serving needs only numpy and pyarrow: `load` reads the skops artifact's fitted arrays
(ml_service.kinds.skops_archive) into a CompiledLogistic, so the server process never
imports scikit-learn, scipy or skops, which cost it about 100 MB resident. Fitting, saving,
importance and notes are scikit-learn's (ml_service.kinds.sklearn_pipeline), imported on
first use: in the training workers, whose forkserver preloads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import version
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ml_service.kinds import skops_archive
from ml_service.kinds.base import FitInput
from ml_service.kinds.compiled_logistic import CompiledLogistic, compile_fitted, compiled


def _sklearn() -> ModuleType:
    return importlib.import_module("ml_service.kinds.sklearn_pipeline")


def library_versions() -> dict[str, str]:
    """Return the versions of scikit-learn, skops, scipy and numpy."""
    return {name: version(name) for name in ("scikit-learn", "skops", "scipy", "numpy")}


def fit(data: FitInput) -> object:
    """Fit the scikit-learn pipeline (see sklearn_pipeline.fit)."""
    return _sklearn().fit(data)


def predict_proba(model: object, features: pa.Table) -> npt.NDArray[np.float64]:
    """Return class probabilities from the fitted arrays, straight from Arrow."""
    if isinstance(model, CompiledLogistic):
        return model.predict_proba(features)
    # A pipeline just fitted, scored on its holdout in the worker.
    return compiled(model).predict_proba(features)


def feature_importance(model: object, names: Sequence[str]) -> list[float]:
    """Sum |coefficient| per column (see sklearn_pipeline.feature_importance)."""
    scores: list[float] = _sklearn().feature_importance(model, names)
    return scores


def save(model: object, path: str) -> None:
    """Write the pipeline with skops, which stores no pickles."""
    _sklearn().save(model, path)


def load(path: str) -> CompiledLogistic:
    """Read an artifact into the arrays that score it, without scikit-learn when possible."""
    try:
        return compile_fitted(skops_archive.read(path))
    except (skops_archive.Unreadable, AttributeError, KeyError, TypeError):
        # Not a layout the reader knows, a type nobody trusts, or steps this kind never
        # fits: skops loads it with TRUSTED_TYPES, or refuses it as it always did.
        return compiled(_sklearn().load(path))


def fit_notes(model: object) -> list[str]:
    """Say so when the solver stopped at max_iter (see sklearn_pipeline.fit_notes)."""
    notes: list[str] = _sklearn().fit_notes(model)
    return notes
