"""Start training jobs over the client-streaming RPCs, wait for them, and answer like REST."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar, cast

import grpc
from fastapi.responses import JSONResponse
from mlops.v1 import training_service_pb2 as ts

from rest_gateway import converters
from rest_gateway.backend import Calls
from rest_gateway.problems import INTERNAL, STATUS_OF, ProblemError

T = TypeVar("T")


CORE_INTERNAL = "Internal error from Core"


def _settled(coroutine: Coroutine[Any, Any, T]) -> T:
    # Run a coroutine that cannot suspend (a finished call's status getter) to its result.
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    coroutine.close()
    raise RuntimeError("the call's status was not settled")


def _snapshot(call: Any) -> grpc.aio.AioRpcError:
    """Capture a finished call's status as an error."""
    return grpc.aio.AioRpcError(
        _settled(call.code()),
        _settled(call.initial_metadata()),
        _settled(call.trailing_metadata()),
        _settled(call.details()),
    )


async def upload(
    backend: Calls,
    method: Any,
    first: Any,
    pieces: AsyncIterator[bytes] | None,
    wrap: Callable[[bytes], Any],
) -> Any:
    """Send the spec, then the data pieces as they are produced; return the queued job."""
    call = method(timeout=backend.settings.upload_timeout_seconds, metadata=backend.metadata)
    # grpc.aio replaces the service's status with INTERNAL "Internal error from Core" when a
    # write races the service's early answer (e.g. a bad spec); keep the first status seen.
    first_status: list[grpc.aio.AioRpcError] = []
    call.add_done_callback(lambda done: first_status.append(_snapshot(done)))
    try:
        await call.write(first)
        if pieces is not None:
            async for piece in pieces:
                await call.write(wrap(piece))
        await call.done_writing()
    except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
        pass  # The service answered before the upload ended; its answer is awaited below.
    except BaseException:
        call.cancel()
        raise
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        if error.details() == CORE_INTERNAL and first_status:
            raise first_status[0] from None
        raise
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
    message = job.error.message or "internal error"  # written for users by the service
    raise ProblemError(
        status, f"Training job {job.job_id} failed: {message}", code=code, title=title
    )
