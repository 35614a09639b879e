"""The model kinds the service can train, by name."""

from __future__ import annotations

from ml_service.errors import NotFound
from ml_service.kinds.base import FitInput, HyperparameterSpec, Kind, Runtime
from ml_service.kinds.catboost import CatBoostKind
from ml_service.kinds.logistic_regression import LogisticRegressionKind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (CatBoostKind(), LogisticRegressionKind())}

__all__ = ["KINDS", "FitInput", "HyperparameterSpec", "Kind", "Runtime", "get_kind", "preload"]


def get_kind(name: str) -> Kind:
    """Return the kind called name, or raise NotFound listing the known kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise NotFound(f"unknown model kind '{name}'; known kinds: {', '.join(KINDS)}") from None


def preload() -> None:
    """Import every kind's runtime now, so the first fit or prediction does not."""
    for kind in KINDS.values():
        _ = kind.runtime
