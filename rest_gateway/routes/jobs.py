"""Training jobs: create from an upload, get, list, cancel, and follow as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, get_args

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.sse import format_sse_event
from mlops.v1 import training_service_pb2 as ts

from rest_gateway import bodies, converters, examples, inputs, openapi, schemas, training_calls
from rest_gateway.backend import BackendDep
from rest_gateway.problems import ProblemError, from_rpc_error

PING_SECONDS = 15.0
EVENT_STREAM = "text/event-stream"
_LOCATION = {"Location": {"description": "Where to find the result.", "schema": {"type": "string"}}}
STARTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": schemas.Job,
        "description": "Queued; follow it at Location.",
        "headers": _LOCATION,
    },
    201: {
        "model": schemas.ModelVersion,
        "description": "With ?wait=true: trained; the new model version.",
        "headers": _LOCATION,
    },
}

EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": [*get_args(schemas.JobStateName), "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [{"$ref": openapi.REF.format(model=m)} for m in ("Job", "Problem")]
            },
        },
    },
}

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=202,
    response_model=None,
    responses={**STARTED, **openapi.problems(404, 409, 413, 415, 429, 507)},
    openapi_extra=openapi.training_body(
        inputs.TrainingSpec, inputs.TrainingRequest, True, examples.TRAINING_REQUEST
    ),
)
async def create_job(
    request: Request, backend: BackendDep, wait: inputs.Wait = False
) -> JSONResponse:
    """Train a new model from JSON rows, a CSV upload or an Arrow IPC stream.

    JSON and multipart bodies carry the spec; with a text/csv or Arrow body the spec is in
    the query string. A failed training under ?wait=true answers with the job's error.
    """
    async with bodies.training_upload(
        request, backend.settings, inputs.TrainingSpec, inputs.TrainingRequest, data_required=True
    ) as upload:
        spec = converters.training_spec(upload.spec)
        job = await training_calls.create_job(backend, spec, upload.pieces)
    if not wait:
        return training_calls.accepted(job)
    return training_calls.finished(await training_calls.wait_for(backend, job))


@router.get("", response_model=schemas.JobList, responses=openapi.problems())
async def list_jobs(
    backend: BackendDep,
    page_size: inputs.PageSize = 0,
    page_token: inputs.PageToken = "",
    model_id: inputs.ModelFilter = "",
) -> schemas.JobList:
    """List training jobs, newest first, optionally of one model."""
    request = ts.ListTrainingJobsRequest(
        page_size=page_size, page_token=page_token, model_id=model_id
    )
    response = await backend.training.ListTrainingJobs(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return schemas.JobList(
        jobs=[converters.job(j) for j in response.jobs], next_page_token=response.next_page_token
    )


@router.get("/{job_id}", response_model=schemas.Job, responses=openapi.problems(404))
async def get_job(job_id: inputs.JobId, backend: BackendDep) -> schemas.Job:
    """Get a job's state, progress and, once it succeeded, its model version."""
    request = ts.GetTrainingJobRequest(job_id=job_id)
    response = await backend.training.GetTrainingJob(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return converters.job(response.job)


@router.post("/{job_id}/cancel", response_model=schemas.Job, responses=openapi.problems(404, 409))
async def cancel_job(job_id: inputs.JobId, backend: BackendDep) -> schemas.Job:
    """Cancel a queued or running job; a finished job answers 409."""
    request = ts.CancelTrainingJobRequest(job_id=job_id)
    response = await backend.training.CancelTrainingJob(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return converters.job(response.job)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "One event per update, named after the job's state (queued, running, then"
                " succeeded, failed or cancelled); `data` is the Job as JSON. The stream ends"
                " after the final state. A lost connection to the service ends it with an"
                " `error` event whose data is a problem object."
            ),
            "content": {EVENT_STREAM: {"itemSchema": EVENT_SCHEMA}},
        },
        **openapi.problems(404),
    },
)
async def job_events(job_id: inputs.JobId, backend: BackendDep) -> StreamingResponse:
    """Follow a job's progress as Server-Sent Events until it ends."""
    request = ts.WatchTrainingJobRequest(job_id=job_id)
    call = backend.training.WatchTrainingJob(
        request, timeout=backend.settings.wait_timeout_seconds, metadata=backend.metadata
    )
    try:
        # Read the first update before answering, so an unknown job is a 404, not an event.
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    if first is grpc.aio.EOF:
        raise ProblemError(500, "internal error", code="INTERNAL")
    return StreamingResponse(
        _events(call, first),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(call: Any, update: Any) -> AsyncIterator[bytes]:
    read: asyncio.Future[Any] | None = None
    try:
        while update is not grpc.aio.EOF:
            job = converters.job(update.job)
            yield format_sse_event(data_str=job.model_dump_json(), event=job.state)
            read = asyncio.ensure_future(call.read())
            # Comments keep proxies from closing a quiet stream while a job waits in the queue.
            while not (await asyncio.wait({read}, timeout=PING_SECONDS))[0]:
                yield format_sse_event(comment="ping")
            update = read.result()
    except grpc.aio.AioRpcError as error:
        body = from_rpc_error(error).body().model_dump_json()
        yield format_sse_event(data_str=body, event="error")
    finally:
        # The client may leave mid-stream: stop the watch and the read waiting on it.
        if read is not None:
            read.cancel()
        call.cancel()
