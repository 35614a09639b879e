"""Training executors: where a job's training runs (see base.py for the seam)."""

from __future__ import annotations

from ml_service.config import Settings
from ml_service.executors.base import Executor, Outcome, Run
from ml_service.executors.local import LocalExecutor
from ml_service.store import Store

__all__ = ["Executor", "Outcome", "Run", "build"]


def build(settings: Settings, store: Store) -> Executor:
    """Return the executor the settings name; Ray is imported only when it is chosen."""
    if settings.training_executor == "ray":
        from ml_service.executors.ray_executor import RayExecutor

        return RayExecutor(settings, store.dataset_path)
    return LocalExecutor(store.dataset_path, settings.cancel_grace_seconds)
