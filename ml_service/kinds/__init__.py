"""The model kinds the service can train, by name."""

from __future__ import annotations

from ml_service.errors import NotFound
from ml_service.kinds.base import HyperparameterSpec, Kind
from ml_service.kinds.catboost import CatBoostKind
from ml_service.kinds.logistic_regression import LogisticRegressionKind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (CatBoostKind(), LogisticRegressionKind())}

__all__ = ["KINDS", "HyperparameterSpec", "Kind", "get_kind", "preload"]


def get_kind(name: str) -> Kind:
    """Return the kind called name, or raise NotFound listing the known kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise NotFound(f"unknown model kind '{name}'; known kinds: {', '.join(KINDS)}") from None


def preload() -> None:
    """Import every kind's ML libraries now, so the first fit or prediction does not."""
    from ml_service.kinds import catboost_model, sklearn_pipeline  # noqa: F401
