"""Predictions: JSON rows, CSV or Arrow IPC in; JSON, CSV or Arrow IPC out, by Accept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

import grpc
import pyarrow as pa
from fastapi import APIRouter, Query, Request, Response
from mlops.v1 import prediction_service_pb2 as ps

from rest_gateway import bodies, inputs, openapi, rpc, schemas, tabular
from rest_gateway.backend import BackendDep, Calls
from rest_gateway.negotiation import negotiate
from rest_gateway.problems import ProblemError

OUTPUTS = (bodies.JSON, bodies.CSV, tabular.ARROW_STREAM)
# Accepted input media types, each answered in its own kind unless Accept says otherwise.
DEFAULT_OUTPUT = {
    bodies.JSON: bodies.JSON,
    bodies.MULTIPART: bodies.CSV,
    bodies.CSV: bodies.CSV,
    tabular.ARROW_STREAM: tabular.ARROW_STREAM,
}
VersionQuery = Annotated[
    int, Query(ge=0, le=2**32 - 1, description="Version to use; 0 means the latest.")
]

router = APIRouter(prefix="/v1/models", tags=["predictions"])


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    return task.exception() if task.done() and not task.cancelled() else None


async def _stream_predict(
    calls: Calls, model_id: inputs.ModelId, version: int, batches: AsyncIterator[bytes]
) -> tuple[int, pa.Table]:
    """Predict batch by batch over StreamPredict, so no single message has to hold the file."""
    call = calls.predictions.StreamPredict(
        timeout=calls.settings.upload_timeout_seconds, metadata=calls.metadata
    )
    keeper = rpc.StatusKeeper(call)
    messages = (
        ps.StreamPredictRequest(model_id=model_id, version=version, arrow_ipc=data)
        async for data in batches
    )
    writer = asyncio.create_task(rpc.write_all(call, messages))

    def stop_reading(task: asyncio.Task[None]) -> None:
        # Bad CSV further down the file fails the writer; end the call so reading ends too.
        if _failure(task) is not None:
            call.cancel()

    writer.add_done_callback(stop_reading)
    tables, answered = [], version
    try:
        async for answer in call:
            tables.append(tabular.ipc_to_table(answer.arrow_ipc))
            answered = answer.version
    except (grpc.aio.AioRpcError, asyncio.CancelledError) as error:
        if (bad_data := _failure(writer)) is not None:
            raise bad_data from None
        writer.cancel()
        call.cancel()
        if isinstance(error, grpc.aio.AioRpcError):
            raise keeper.real(error) from None
        raise
    await writer  # raises the CSV's 400, if that is what ended the call
    return answered, pa.concat_tables(tables)


async def _answer(
    calls: Calls, model_id: inputs.ModelId, version: int, request: Request, kind: str
) -> tuple[int, pa.Table | bytes]:
    """Read the input by its media type and predict: a table, or Arrow bytes to pass on."""
    settings = calls.settings
    if kind == bodies.JSON or kind.endswith("+json"):
        text = await bodies.json_body(request, settings.max_json_bytes)
        rows = inputs.parse_json(inputs.PredictRequest, text).rows
        data = tabular.rows_to_ipc(rows, settings.max_columns)
    elif kind == tabular.ARROW_STREAM:
        data = await bodies.message_body(request, settings.max_message_bytes)
    elif kind == bodies.MULTIPART:
        async with request.form(max_files=1, max_fields=0) as form:
            file = form.get("file")
            if file is None or isinstance(file, str):
                raise ProblemError.invalid("file", "a CSV file is required")
            batches = tabular.csv_to_ipc_batches(
                file.file, settings.csv_block_bytes, settings.max_columns
            )
            return await _stream_predict(calls, model_id, version, await bodies.primed(batches))
    else:
        with bodies.spool() as spooled:
            await bodies.spool_body(request, spooled)
            batches = tabular.csv_to_ipc_batches(
                spooled, settings.csv_block_bytes, settings.max_columns
            )
            return await _stream_predict(calls, model_id, version, await bodies.primed(batches))
    message = ps.PredictRequest(model_id=model_id, version=version, arrow_ipc=data)
    response = await calls.predictions.Predict(
        message, timeout=calls.timeout, metadata=calls.metadata
    )
    answer: pa.Table | bytes = response.arrow_ipc
    if kind != tabular.ARROW_STREAM:
        answer = tabular.ipc_to_table(response.arrow_ipc)
    return response.version, answer


@router.post(
    "/{model_id}/predict",
    response_model=schemas.PredictResponse,
    responses={200: openapi.PREDICT_OUTPUTS, **openapi.problems(404, 406, 413, 415)},
    openapi_extra=openapi.predict_body(),
)
async def predict(
    model_id: inputs.ModelId, request: Request, backend: BackendDep, version: VersionQuery = 0
) -> Response:
    """Predict labels and class probabilities.

    Send JSON rows, a CSV (multipart `file` or a text/csv body) or an Arrow IPC stream. The
    answer is JSON, CSV or Arrow IPC as Accept asks; by default in the kind of the input. A
    CSV is read and predicted batch by batch (StreamPredict), so it may be large.
    """
    kind = bodies.media_type(request)
    default = DEFAULT_OUTPUT.get(kind, bodies.JSON)
    if kind not in DEFAULT_OUTPUT and not kind.endswith("+json"):
        raise bodies.unsupported(request, tuple(DEFAULT_OUTPUT))
    output = negotiate(request.headers.get("accept", ""), default, OUTPUTS)
    if output is None:
        raise ProblemError(406, f"Accept one of {', '.join(OUTPUTS)}.")
    answered, answer = await _answer(backend, model_id, version, request, kind)
    if output == tabular.ARROW_STREAM:
        data = answer if isinstance(answer, bytes) else tabular.table_to_ipc(answer)
        return Response(data, media_type=tabular.ARROW_STREAM)
    table = tabular.ipc_to_table(answer) if isinstance(answer, bytes) else answer
    if output == bodies.CSV:
        return Response(tabular.table_to_csv(table), media_type="text/csv")
    body = {"model_id": model_id, "version": answered, "predictions": tabular.predictions(table)}
    return Response(json.dumps(body, allow_nan=False), media_type=bodies.JSON)
