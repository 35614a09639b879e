"""Prediction use cases: Arrow IPC in, predictions out, through the model cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyarrow as pa

from ml_service.core_state import CoreState
from ml_service.loaded_model import LoadedModel
from ml_service.telemetry import use_case


class PredictionUseCases(CoreState):
    """Predict with a model's version, whole, by rows or as a stream."""

    @use_case
    async def predict(self, model_id: str, version: int, data: bytes) -> tuple[int, bytes]:
        """Predict one Arrow IPC stream; return the version that answered and the predictions."""
        return await self.predictions.predict(model_id, version, data)

    @use_case
    async def prediction_model(self, model_id: str, version: int) -> LoadedModel:
        """Return a version's loaded model (0 = latest), for transports that decode rows."""
        return await self.predictions.model(model_id, version)

    @use_case
    async def predict_rows(self, model: LoadedModel, rows: pa.Table) -> pa.RecordBatch:
        """Predict decoded rows with a loaded model, under the same caps as predict."""
        return await self.predictions.predict_rows(model, rows)

    @use_case
    async def stream_predict(
        self, model_id: str, version: int, messages: AsyncIterator[bytes]
    ) -> AsyncIterator[tuple[int, int, bytes, bool]]:
        """Answer a stream of Arrow IPC batches in order (see Predictions.stream)."""
        async for answer in self.predictions.stream(model_id, version, messages):
            yield answer
