"""Model management use cases: look at, list and delete models and their versions."""

from __future__ import annotations

import asyncio

from ml_service.core_state import CoreState
from ml_service.domain import ModelRecord, VersionRecord
from ml_service.errors import FailedPrecondition, InvalidArgument
from ml_service.ids import check_id
from ml_service.telemetry import use_case


class ModelUseCases(CoreState):
    """Models and versions: get, list, delete; a model being trained is not deleted."""

    @use_case
    async def get_model(self, model_id: str) -> ModelRecord:
        """Return one model."""
        return await asyncio.to_thread(self.store.get_model, check_id(model_id, "model_id"))

    @use_case
    async def list_models(self, page_size: int, page_token: str) -> tuple[list[ModelRecord], str]:
        """Return one page of models, newest first."""
        return await asyncio.to_thread(self.store.list_models, page_size, page_token)

    @use_case
    async def get_version(self, model_id: str, version: int) -> VersionRecord:
        """Return one version; 0 means the latest."""
        check_id(model_id, "model_id")
        return await asyncio.to_thread(self.store.get_version, model_id, version)

    @use_case
    async def list_versions(
        self, model_id: str, page_size: int, page_token: str
    ) -> tuple[list[VersionRecord], str]:
        """Return one page of a model's versions, newest first."""
        check_id(model_id, "model_id")
        return await asyncio.to_thread(self.store.list_versions, model_id, page_size, page_token)

    @use_case
    async def delete_model(self, model_id: str) -> int:
        """Delete a model and all its versions; refused while a job trains it."""
        check_id(model_id, "model_id")
        await self._refuse_if_training(model_id)
        deleted = await asyncio.to_thread(self.store.delete_model, model_id)
        self.predictions.forget(model_id)
        return deleted

    @use_case
    async def delete_version(self, model_id: str, version: int) -> bool:
        """Delete one version; returns whether the model went with it."""
        check_id(model_id, "model_id")
        if version <= 0:
            raise InvalidArgument.field("version", "name the version to delete (1 or more)")
        await self._refuse_if_training(model_id)
        gone = await asyncio.to_thread(self.store.delete_version, model_id, version)
        self.predictions.forget(model_id, version)
        return gone

    async def _refuse_if_training(self, model_id: str) -> None:
        job_id = await self.jobs.active_job_for_model(model_id)
        if job_id is not None:
            raise FailedPrecondition(
                f"model '{model_id}' is being trained by job '{job_id}'; cancel it or wait"
            )
