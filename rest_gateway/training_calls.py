"""Start training jobs over the client-streaming RPCs, wait for them, and answer like REST."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from fastapi.responses import JSONResponse
from mlops.v1 import training_service_pb2 as ts

from rest_gateway import converters, rpc, tabular
from rest_gateway.backend import Calls
from rest_gateway.problems import INTERNAL, STATUS_OF, STATUS_OF_REASON, ProblemError


async def upload(
    backend: Calls,
    method: Any,
    first: Any,
    pieces: AsyncIterator[bytes] | None,
    wrap: Callable[[bytes], Any],
) -> Any:
    """Send the spec, then the data pieces as they are produced; return the queued job."""

    async def messages(data: AsyncIterator[bytes] | None) -> AsyncIterator[Any]:
        yield first
        if data is not None:
            async for piece in data:
                yield wrap(piece)

    while True:
        call = method(timeout=backend.settings.upload_timeout_seconds, metadata=backend.metadata)
        keeper = rpc.StatusKeeper(call)
        try:
            await rpc.write_all(call, messages(pieces))
            break
        except tabular.StartOver as again:
            call.cancel()  # not half-closed: the service created nothing
            pieces = again.pieces
        except BaseException:
            call.cancel()  # bad data mid-upload (a 400) or the client left: drop the call
            raise
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        raise keeper.real(error) from None
    return response.job


async def create_job(backend: Calls, spec: Any, pieces: AsyncIterator[bytes] | None) -> Any:
    """Start a job that trains a new model."""
    first = ts.CreateTrainingJobRequest(spec=spec)
    return await upload(
        backend,
        backend.training.CreateTrainingJob,
        first,
        pieces,
        lambda piece: ts.CreateTrainingJobRequest(arrow_chunk=piece),
    )


async def retrain(backend: Calls, spec: Any, pieces: AsyncIterator[bytes] | None) -> Any:
    """Start a job that trains the next version of a model."""
    first = ts.RetrainModelRequest(spec=spec)
    return await upload(
        backend,
        backend.training.RetrainModel,
        first,
        pieces,
        lambda piece: ts.RetrainModelRequest(arrow_chunk=piece),
    )


async def wait_for(backend: Calls, job: Any) -> Any:
    """Follow a job until it reaches a final state and return it."""
    timeout = backend.settings.wait_timeout_seconds
    request = ts.WatchTrainingJobRequest(job_id=job.job_id)
    try:
        watch = backend.training.WatchTrainingJob(
            request, timeout=timeout, metadata=backend.metadata
        )
        async for update in watch:
            job = update.job
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        raise ProblemError(
            504,
            f"Training job {job.job_id} did not finish within {timeout:g} s; it keeps running: "
            f"follow it at /v1/jobs/{job.job_id}.",
        ) from None
    return job


def accepted(job: Any) -> JSONResponse:
    """Answer 202 with the job and where to follow it."""
    return JSONResponse(
        converters.job(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.job_id}"},
    )


def finished(job: Any) -> JSONResponse:
    """Answer 201 with the new model version, or the job's failure as a problem."""
    state = converters.job_state(job)
    if state == "succeeded":
        result = converters.version(job.result)
        location = f"/v1/models/{result.model_id}/versions/{result.version}"
        return JSONResponse(
            result.model_dump(mode="json"), status_code=201, headers={"Location": location}
        )
    if state == "cancelled":
        raise ProblemError(409, f"Training job {job.job_id} was cancelled.", code="ABORTED")
    if state != "failed":
        raise ProblemError(500, "internal error", code="INTERNAL")  # the watch ended too early
    code = job.error.code or "INTERNAL"
    grpc_code = grpc.StatusCode.__members__.get(code, grpc.StatusCode.INTERNAL)
    status, title = STATUS_OF.get(grpc_code, INTERNAL)
    if grpc_code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        # The data passed every size limit before the job was queued; a job runs out of
        # nothing but the space to save its model.
        status, title = STATUS_OF_REASON["NO_SPACE"]
    message = job.error.message or "internal error"  # written for users by the service
    raise ProblemError(
        status, f"Training job {job.job_id} failed: {message}", code=code, title=title
    )
