"""The Open Inference Protocol's REST API (KServe V2), translated to the gRPC V2 service.

Errors are the protocol's `{"error": "..."}` with the status from the one table in
rest_gateway.problems.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import grpc
import inference
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from rest_gateway import bodies, v2_tensors
from rest_gateway.backend import BackendDep, Calls
from rest_gateway.problems import V2_PREFIX, ProblemError, from_rpc_error

log = logging.getLogger(__name__)

router = APIRouter(prefix=V2_PREFIX, tags=["Open Inference Protocol (V2)"])


class V2Error(BaseModel):
    """The protocol's error body."""

    error: str


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": V2Error, "description": HTTPStatus(status).phrase}
        for status in sorted({*statuses, 400, 401, 500, 503, 504})
    }


async def _answer(work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except grpc.aio.AioRpcError as error:
        problem = from_rpc_error(error)
    except ProblemError as error:
        problem = error
    log.info("v2 request failed", extra={"status": problem.status, "code": problem.code})
    return JSONResponse({"error": problem.detail}, problem.status, headers=problem.headers)


async def _call(calls: Calls, method: str, request: Any) -> Any:
    rpc = getattr(calls.backend.inference, method)
    return await rpc(request, timeout=calls.timeout, metadata=calls.metadata)


@router.get("/health/live", summary="Whether the model service is live", responses=_errors())
async def live(calls: BackendDep) -> Response:
    """200 while the gRPC service answers, else 503."""

    async def work() -> Response:
        answer = await _call(calls, "ServerLive", inference.ServerLiveRequest())
        return JSONResponse({"live": answer.live}, 200 if answer.live else 503)

    return await _answer(work)


@router.get("/health/ready", summary="Whether the model service is ready", responses=_errors())
async def ready(calls: BackendDep) -> Response:
    """200 once the gRPC service's store is open, else 503."""

    async def work() -> Response:
        answer = await _call(calls, "ServerReady", inference.ServerReadyRequest())
        return JSONResponse({"ready": answer.ready}, 200 if answer.ready else 503)

    return await _answer(work)


@router.get("", summary="Server metadata", responses=_errors())
async def server_metadata(calls: BackendDep) -> Response:
    """The server's name, version and protocol extensions."""

    async def work() -> Response:
        answer = await _call(calls, "ServerMetadata", inference.ServerMetadataRequest())
        body = {
            "name": answer.name,
            "version": answer.version,
            "extensions": list(answer.extensions),
        }
        return JSONResponse(body)

    return await _answer(work)


async def _model_metadata(calls: Calls, name: str, version: str) -> Response:
    async def work() -> Response:
        request = inference.ModelMetadataRequest(name=name, version=version)
        return JSONResponse(v2_tensors.model_metadata(await _call(calls, "ModelMetadata", request)))

    return await _answer(work)


@router.get("/models/{name}", summary="Model metadata (latest version)", responses=_errors(404))
async def model_metadata(name: str, calls: BackendDep) -> Response:
    """Inputs (one per feature column) and outputs of a model's latest version."""
    return await _model_metadata(calls, name, "")


@router.get("/models/{name}/versions/{version}", summary="Model metadata", responses=_errors(404))
async def version_metadata(name: str, version: str, calls: BackendDep) -> Response:
    """Inputs (one per feature column) and outputs of a model version."""
    return await _model_metadata(calls, name, version)


async def _model_ready(calls: Calls, name: str, version: str) -> Response:
    async def work() -> Response:
        request = inference.ModelReadyRequest(name=name, version=version)
        answer = await _call(calls, "ModelReady", request)
        if answer.ready:
            return JSONResponse({"name": name, "ready": True})
        # 400 for "not ready", as Triton answers; clients only test for 200.
        error = f"model {name[:80]!r} version {version or 'latest'} is not ready: it does not exist"
        return JSONResponse({"error": error}, 400)

    return await _answer(work)


@router.get("/models/{name}/ready", summary="Whether a model is ready", responses=_errors())
async def model_ready(name: str, calls: BackendDep) -> Response:
    """200 when the model's latest version loads, else 400."""
    return await _model_ready(calls, name, "")


@router.get(
    "/models/{name}/versions/{version}/ready",
    summary="Whether a model version is ready",
    responses=_errors(),
)
async def version_ready(name: str, version: str, calls: BackendDep) -> Response:
    """200 when the version exists and loads, else 400."""
    return await _model_ready(calls, name, version)


async def _infer(calls: Calls, request: Request, name: str, version: str) -> Response:
    async def work() -> Response:
        length = request.headers.get(v2_tensors.HEADER_LENGTH)
        if length is not None and not length.isdecimal():
            raise ProblemError.invalid(v2_tensors.HEADER_LENGTH, "must be a byte count")
        # JSON becomes Python objects, ten times its size and more (a 100 MB list of numbers
        # took 1.5 GB), so it has the JSON cap of /v1; binary data after it, the body's.
        # (Content-Encoding is inflated as the body streams, by bodies.ContentDecodingMiddleware.)
        settings = calls.settings
        over_the_cap = v2_tensors.json_over_the_cap(settings.max_json_bytes)
        if length is None:
            body = await bodies.capped_body(request, settings.max_json_bytes, over_the_cap)
        else:
            if int(length) > settings.max_json_bytes:
                raise over_the_cap
            # A larger body could not be sent: inflating one (300 kB of gzip to 300 MB)
            # took the gateway to 1 GB in copies before gRPC refused the message.
            most = min(settings.max_body_bytes, settings.max_message_bytes)
            body = await bodies.capped_body(request, most, v2_tensors.over_a_message(most))
        message, binary, default = v2_tensors.infer_request(
            name, version, body, None if length is None else int(length)
        )
        answer = await _call(calls, "ModelInfer", message)
        header, blobs = v2_tensors.infer_response(answer, binary, default)
        if not blobs:
            return Response(header, media_type="application/json")
        return Response(
            header + blobs,
            media_type="application/octet-stream",
            headers={v2_tensors.HEADER_LENGTH: str(len(header))},
        )

    return await _answer(work)


_INFER_DOCS: dict[str, Any] = {
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    "responses": {
        200: {
            "description": "Outputs as JSON, or a JSON header then binary data",
            "content": {"application/json": {}, "application/octet-stream": {}},
        },
        **_errors(404, 413, 429),
    },
}


@router.post("/models/{name}/infer", summary="Predict (latest version)", **_INFER_DOCS)
async def infer(name: str, request: Request, calls: BackendDep) -> Response:
    """JSON tensors, or binary tensor data after an Inference-Header-Content-Length header."""
    return await _infer(calls, request, name, "")


@router.post("/models/{name}/versions/{version}/infer", summary="Predict", **_INFER_DOCS)
async def version_infer(name: str, version: str, request: Request, calls: BackendDep) -> Response:
    """Like infer, for one version."""
    return await _infer(calls, request, name, version)
