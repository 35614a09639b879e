"""gRPC servicers: convert, delegate to the core, convert back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeAlias, TypeVar

from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc

from ml_service.core import ModelServiceCore
from ml_service.errors import InvalidArgument
from ml_service.grpc import converters as conv
from ml_service.grpc.errors import DEADLINE_SLACK, streaming, unary

Ctx: TypeAlias = Any
Upload = TypeVar("Upload", ts.CreateTrainingJobRequest, ts.RetrainModelRequest)


class ModelServicer(ms_grpc.ModelServiceServicer):
    """mlops.v1.ModelService."""

    SERVICE_NAME = ms.DESCRIPTOR.services_by_name["ModelService"].full_name

    def __init__(self, core: ModelServiceCore) -> None:
        self._core = core

    @unary
    async def ListModelKinds(
        self, request: ms.ListModelKindsRequest, context: Ctx
    ) -> ms.ListModelKindsResponse:
        return ms.ListModelKindsResponse(
            kinds=[conv.model_kind(k) for k in self._core.list_kinds()]
        )

    @unary
    async def GetModel(self, request: ms.GetModelRequest, context: Ctx) -> ms.GetModelResponse:
        return ms.GetModelResponse(model=conv.model(await self._core.get_model(request.model_id)))

    @unary
    async def ListModels(
        self, request: ms.ListModelsRequest, context: Ctx
    ) -> ms.ListModelsResponse:
        models, token = await self._core.list_models(request.page_size, request.page_token)
        return ms.ListModelsResponse(models=[conv.model(m) for m in models], next_page_token=token)

    @unary
    async def DeleteModel(
        self, request: ms.DeleteModelRequest, context: Ctx
    ) -> ms.DeleteModelResponse:
        deleted = await self._core.delete_model(request.model_id)
        return ms.DeleteModelResponse(deleted_versions=deleted)

    @unary
    async def GetModelVersion(
        self, request: ms.GetModelVersionRequest, context: Ctx
    ) -> ms.GetModelVersionResponse:
        record = await self._core.get_version(request.model_id, request.version)
        return ms.GetModelVersionResponse(model_version=conv.model_version(record))

    @unary
    async def ListModelVersions(
        self, request: ms.ListModelVersionsRequest, context: Ctx
    ) -> ms.ListModelVersionsResponse:
        versions, token = await self._core.list_versions(
            request.model_id, request.page_size, request.page_token
        )
        return ms.ListModelVersionsResponse(
            model_versions=[conv.model_version(v) for v in versions], next_page_token=token
        )

    @unary
    async def DeleteModelVersion(
        self, request: ms.DeleteModelVersionRequest, context: Ctx
    ) -> ms.DeleteModelVersionResponse:
        gone = await self._core.delete_version(request.model_id, request.version)
        return ms.DeleteModelVersionResponse(model_deleted=gone)


async def _split_upload(
    requests: AsyncIterator[Upload], context: Ctx
) -> tuple[Any, AsyncIterator[bytes]]:
    """Take the spec from the first message; the rest must be data pieces."""
    first = await anext(aiter(requests), None)
    if first is None or first.WhichOneof("payload") != "spec":
        raise InvalidArgument.field("spec", "the first message must carry the spec")

    async def chunks() -> AsyncIterator[bytes]:
        async for message in requests:
            if message.WhichOneof("payload") != "arrow_chunk":
                raise InvalidArgument.field("spec", "only the first message may carry the spec")
            yield message.arrow_chunk
        # grpc.aio ends a request stream its deadline cuts off as if the client had finished:
        # cut at a message's end, the rows so far are a valid table, which would have been
        # trained on while the client was told the call failed. It is a disconnect.
        remaining = context.time_remaining()
        if remaining is not None and remaining <= DEADLINE_SLACK:
            raise asyncio.CancelledError

    return first.spec, chunks()


class TrainingServicer(ts_grpc.TrainingServiceServicer):
    """mlops.v1.TrainingService."""

    SERVICE_NAME = ts.DESCRIPTOR.services_by_name["TrainingService"].full_name

    def __init__(self, core: ModelServiceCore) -> None:
        self._core = core

    @unary
    async def CreateTrainingJob(
        self, request_iterator: AsyncIterator[ts.CreateTrainingJobRequest], context: Ctx
    ) -> ts.CreateTrainingJobResponse:
        spec, chunks = await _split_upload(request_iterator, context)
        view = await self._core.create_training_job(conv.train_request(spec), chunks)
        return ts.CreateTrainingJobResponse(job=conv.training_job(view))

    @unary
    async def RetrainModel(
        self, request_iterator: AsyncIterator[ts.RetrainModelRequest], context: Ctx
    ) -> ts.RetrainModelResponse:
        spec, chunks = await _split_upload(request_iterator, context)
        view = await self._core.retrain(conv.retrain_request(spec), chunks)
        return ts.RetrainModelResponse(job=conv.training_job(view))

    @unary
    async def GetTrainingJob(
        self, request: ts.GetTrainingJobRequest, context: Ctx
    ) -> ts.GetTrainingJobResponse:
        view = await self._core.get_job(request.job_id)
        return ts.GetTrainingJobResponse(job=conv.training_job(view))

    @unary
    async def ListTrainingJobs(
        self, request: ts.ListTrainingJobsRequest, context: Ctx
    ) -> ts.ListTrainingJobsResponse:
        views, token = await self._core.list_jobs(
            request.page_size, request.page_token, request.model_id
        )
        # A page lists jobs, not versions: GetTrainingJob has each one's result.
        return ts.ListTrainingJobsResponse(
            jobs=[conv.training_job(v, with_result=False) for v in views], next_page_token=token
        )

    @unary
    async def CancelTrainingJob(
        self, request: ts.CancelTrainingJobRequest, context: Ctx
    ) -> ts.CancelTrainingJobResponse:
        view = await self._core.cancel_job(request.job_id)
        return ts.CancelTrainingJobResponse(job=conv.training_job(view))

    @streaming
    async def WatchTrainingJob(
        self, request: ts.WatchTrainingJobRequest, context: Ctx
    ) -> AsyncIterator[ts.WatchTrainingJobResponse]:
        async for view in self._core.watch_job(request.job_id):
            yield ts.WatchTrainingJobResponse(job=conv.training_job(view))


class PredictionServicer(ps_grpc.PredictionServiceServicer):
    """mlops.v1.PredictionService."""

    SERVICE_NAME = ps.DESCRIPTOR.services_by_name["PredictionService"].full_name

    def __init__(self, core: ModelServiceCore) -> None:
        self._core = core

    @unary
    async def Predict(self, request: ps.PredictRequest, context: Ctx) -> ps.PredictResponse:
        version, data = await self._core.predict(
            request.model_id, request.version, request.arrow_ipc
        )
        return ps.PredictResponse(model_id=request.model_id, version=version, arrow_ipc=data)

    @streaming
    async def StreamPredict(
        self, request_iterator: AsyncIterator[ps.StreamPredictRequest], context: Ctx
    ) -> AsyncIterator[ps.StreamPredictResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return

        async def payloads() -> AsyncIterator[bytes]:
            yield first.arrow_ipc
            async for message in request_iterator:
                yield message.arrow_ipc

        answers = self._core.stream_predict(first.model_id, first.version, payloads())
        async for index, version, data, continued in answers:
            yield ps.StreamPredictResponse(
                batch_index=index, version=version, arrow_ipc=data, continued=continued
            )
