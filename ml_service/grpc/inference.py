"""inference.GRPCInferenceService: the Open Inference Protocol (KServe V2) servicer.

Converts and delegates like the mlops.v1 servicers: the use cases are in
ml_service.open_inference, the message mapping in inference_converters.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, TypeAlias

import inference

from ml_service.errors import InvalidArgument
from ml_service.grpc import inference_converters as conv
from ml_service.grpc.errors import unary
from ml_service.open_inference import OpenInference

Ctx: TypeAlias = Any
SERVER_NAME = "mlops-service"
#: Protocol extensions served: raw contents over gRPC, binary tensors over HTTP.
EXTENSIONS = ("binary_tensor_data",)


class InferenceServicer:
    """The V2 RPCs over the same core, models and cache as mlops.v1."""

    SERVICE_NAME = "inference.GRPCInferenceService"

    def __init__(self, service: OpenInference) -> None:
        self._service = service
        # The per-RPC wrapper (grpc/errors.py) finds the metrics and tracer through the core.
        self._core = service.core

    @unary
    async def ServerLive(self, request: Any, context: Ctx) -> Any:
        return inference.ServerLiveResponse(live=True)

    @unary
    async def ServerReady(self, request: Any, context: Ctx) -> Any:
        return inference.ServerReadyResponse(ready=self._service.server_ready())

    @unary
    async def ModelReady(self, request: Any, context: Ctx) -> Any:
        ready = await self._service.ready(request.name, request.version)
        return inference.ModelReadyResponse(ready=ready)

    @unary
    async def ServerMetadata(self, request: Any, context: Ctx) -> Any:
        return inference.ServerMetadataResponse(
            name=SERVER_NAME, version=metadata.version("mlops-service"), extensions=EXTENSIONS
        )

    @unary
    async def ModelMetadata(self, request: Any, context: Ctx) -> Any:
        model = await self._service.model(request.name, request.version, ("name", "version"))
        return conv.model_metadata(request.name, model)

    @unary
    async def ModelInfer(self, request: Any, context: Ctx) -> Any:
        model = await self._service.model(request.model_name, request.model_version)
        names, binary = conv.requested_outputs(request)
        try:
            rows = conv.input_table(request, model.signature.features)
            predictions = await self._service.predict(model, rows)
        except InvalidArgument as error:
            raise conv.rename_fields(error) from error
        return conv.infer_response(request, model, predictions, names, binary)
