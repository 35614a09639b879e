"""The service's core: train, retrain, follow jobs, predict, inspect and delete. No transport here.

`ModelServiceCore` is the only door the transports use. It opens and closes the store,
job manager and replica sync (`CoreState` holds them); the use cases live by theme:
`training_use_cases.py`, `job_use_cases.py`, `prediction_use_cases.py` and
`model_use_cases.py`.
"""

from __future__ import annotations

import asyncio
import functools

from ml_service import executors
from ml_service.job_manager import JobManager
from ml_service.job_use_cases import JobUseCases
from ml_service.kinds import KINDS, Kind
from ml_service.model_use_cases import ModelUseCases
from ml_service.prediction_use_cases import PredictionUseCases
from ml_service.predictor import ModelCache, Predictions, PredictLimits
from ml_service.replicas import ReplicaSync
from ml_service.store import Store, StoreUnreachable
from ml_service.training_use_cases import TrainingUseCases


class ModelServiceCore(TrainingUseCases, JobUseCases, PredictionUseCases, ModelUseCases):
    """Every operation the transports expose, on one store and one job manager."""

    async def open(self) -> None:
        """Open the store (sweeping leftovers) and start the training dispatchers."""
        try:
            store = await asyncio.to_thread(
                functools.partial(
                    Store.open,
                    self.settings.data_dir,
                    database_url=self.settings.database_url,
                    artifact_uri=self.settings.artifact_uri,
                )
            )
        except StoreUnreachable as exc:
            self._not_open = exc.message
            raise
        store.observe = self.telemetry.store_operation
        jobs = JobManager(
            store,
            self._commit,
            max_concurrent=self.settings.max_concurrent_trainings,
            max_queued=self.settings.max_queued_jobs,
            cancel_grace_seconds=self.settings.cancel_grace_seconds,
            telemetry=self.telemetry,
            owner=self._replica,
            lease_seconds=self.settings.job_lease_seconds,
            executor=executors.build(self.settings, store),
        )
        await jobs.start()
        self.predictions = Predictions(
            ModelCache(self.settings.model_cache_size, store.open_artifact, self.telemetry),
            store.get_version,
            PredictLimits(
                rows=self.settings.max_predict_rows,
                values=self.settings.max_predict_values,
                message_bytes=self.settings.max_message_bytes,
            ),
        )
        if store.shared is not None:
            self._sync = ReplicaSync(
                store,
                jobs,
                self.predictions,
                owner=self._replica,
                lease_seconds=self.settings.job_lease_seconds,
            )
            await self._sync.start()
        self._store, self._jobs = store, jobs

    async def close(self) -> None:
        """Stop training (running jobs end as interrupted) and close the store."""
        jobs, store, sync = self._jobs, self._store, self._sync
        self._jobs = self._store = self._sync = None
        if sync is not None:
            await sync.close()
        if jobs is not None:
            await jobs.close()
        if store is not None:
            await asyncio.to_thread(store.close)

    # Kinds

    def list_kinds(self) -> list[Kind]:
        """Return every model kind."""
        return list(KINDS.values())
