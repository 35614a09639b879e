"""Predictions: JSON rows, CSV or Arrow IPC in; JSON, CSV or Arrow IPC out, by Accept."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from mlops.v1 import prediction_service_pb2 as ps

from rest_gateway import inputs, openapi, schemas, tabular, uploads
from rest_gateway.backend import BackendDep
from rest_gateway.config import GatewaySettings
from rest_gateway.problems import ProblemError

OUTPUTS = (uploads.JSON, uploads.CSV, tabular.ARROW_STREAM)
VersionQuery = Annotated[
    int, Query(ge=0, le=2**32 - 1, description="Version to use; 0 means the latest.")
]

router = APIRouter(prefix="/v1/models", tags=["predictions"])


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for item in accept.split(","):
        name, *params = (part.strip().lower() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((name, q))
    return ranges


def _quality(media: str, ranges: list[tuple[str, float]]) -> float:
    # The most specific matching range decides (RFC 9110, 12.5.1).
    best: tuple[int, float] | None = None
    for name, q in ranges:
        specificity = {media: 2, media.split("/")[0] + "/*": 1, "*/*": 0}.get(name)
        if specificity is not None and (best is None or specificity > best[0]):
            best = (specificity, q)
    return best[1] if best else 0.0


def negotiate(accept: str, default: str) -> str | None:
    """Pick the output media type from an Accept header; None when nothing is acceptable."""
    if not accept.strip():
        return default
    ranges = _ranges(accept)
    candidates = [default, *(media for media in OUTPUTS if media != default)]
    # Highest quality wins; on a tie the input's own kind, then the order of OUTPUTS.
    quality, _, media = max((_quality(m, ranges), -i, m) for i, m in enumerate(candidates))
    return media if quality > 0 else None


async def _input_ipc(request: Request, settings: GatewaySettings) -> tuple[bytes, str]:
    """Read the rows to predict as one IPC stream; also return the matching output type."""
    kind = uploads.media_type(request)
    block_bytes = settings.csv_block_bytes
    if kind == uploads.JSON or kind.endswith("+json"):
        text = await uploads.json_body(request, settings.max_json_bytes)
        body = inputs.parse_json(inputs.PredictRequest, text)
        return tabular.rows_to_ipc(body.rows), uploads.JSON
    if kind == uploads.MULTIPART:
        async with request.form(max_files=1, max_fields=0) as form:
            file = form.get("file")
            if file is None or isinstance(file, str):
                raise ProblemError.invalid("file", "a CSV file is required")
            return await tabular.csv_to_ipc(file.file, block_bytes), uploads.CSV
    if kind == uploads.CSV:
        with uploads.spool() as spooled:
            await uploads.spool_body(request, spooled)
            return await tabular.csv_to_ipc(spooled, block_bytes), uploads.CSV
    if kind == tabular.ARROW_STREAM:
        return await request.body(), tabular.ARROW_STREAM
    raise uploads.unsupported(request, (uploads.JSON, uploads.MULTIPART, *OUTPUTS[1:]))


@router.post(
    "/{model_id}/predict",
    response_model=schemas.PredictResponse,
    responses={200: openapi.PREDICT_OUTPUTS, **openapi.problems(404, 406, 413, 415)},
    openapi_extra=openapi.predict_body(),
)
async def predict(
    model_id: str, request: Request, backend: BackendDep, version: VersionQuery = 0
) -> Response:
    """Predict labels and class probabilities.

    Send JSON rows, a CSV (multipart `file` or a text/csv body) or an Arrow IPC stream. The
    answer is JSON, CSV or Arrow IPC as Accept asks; by default in the kind of the input.
    """
    data, default = await _input_ipc(request, backend.settings)
    output = negotiate(request.headers.get("accept", ""), default)
    if output is None:
        raise ProblemError(406, f"Accept one of {', '.join(OUTPUTS)}.")
    message = ps.PredictRequest(model_id=model_id, version=version, arrow_ipc=data)
    response = await backend.predictions.Predict(
        message, timeout=backend.timeout, metadata=backend.metadata
    )
    if output == tabular.ARROW_STREAM:
        return Response(response.arrow_ipc, media_type=tabular.ARROW_STREAM)
    table = tabular.ipc_to_table(response.arrow_ipc)
    if output == uploads.CSV:
        return Response(tabular.table_to_csv(table), media_type="text/csv")
    body = {
        "model_id": response.model_id,
        "version": response.version,
        "predictions": tabular.predictions(table),
    }
    return Response(json.dumps(body, allow_nan=False), media_type=uploads.JSON)
