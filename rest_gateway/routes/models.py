"""Models and their versions: list, get, delete, and retrain into a new version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from mlops.v1 import model_service_pb2 as ms

from rest_gateway import bodies, converters, examples, inputs, openapi, schemas, training_calls
from rest_gateway.backend import BackendDep
from rest_gateway.routes.jobs import STARTED

Version = Annotated[
    int, Path(ge=0, le=2**32 - 1, description="Version number, from 1; 0 means the latest.")
]
# Deleting "the latest" by accident would be too easy: the service wants a number.
NamedVersion = Annotated[
    int,
    Path(
        ge=0, le=2**32 - 1, description="Version number, from 1.", json_schema_extra={"minimum": 1}
    ),
]

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=schemas.ModelList, responses=openapi.problems())
async def list_models(
    backend: BackendDep, page_size: inputs.PageSize = 0, page_token: inputs.PageToken = ""
) -> schemas.ModelList:
    """List models, newest first."""
    request = ms.ListModelsRequest(page_size=page_size, page_token=page_token)
    response = await backend.models.ListModels(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return schemas.ModelList(
        models=[converters.model(m) for m in response.models],
        next_page_token=response.next_page_token,
    )


@router.get("/{model_id}", response_model=schemas.Model, responses=openapi.problems(404))
async def get_model(model_id: inputs.ModelId, backend: BackendDep) -> schemas.Model:
    """Get one model."""
    request = ms.GetModelRequest(model_id=model_id)
    response = await backend.models.GetModel(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return converters.model(response.model)


@router.delete(
    "/{model_id}", response_model=schemas.DeletedModel, responses=openapi.problems(404, 409)
)
async def delete_model(model_id: inputs.ModelId, backend: BackendDep) -> schemas.DeletedModel:
    """Delete a model with all its versions; 409 while one of its jobs is training."""
    request = ms.DeleteModelRequest(model_id=model_id)
    response = await backend.models.DeleteModel(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return schemas.DeletedModel(deleted_versions=response.deleted_versions)


@router.get(
    "/{model_id}/versions", response_model=schemas.VersionList, responses=openapi.problems(404)
)
async def list_versions(
    model_id: inputs.ModelId,
    backend: BackendDep,
    page_size: inputs.PageSize = 0,
    page_token: inputs.PageToken = "",
) -> schemas.VersionList:
    """List a model's versions, newest first."""
    request = ms.ListModelVersionsRequest(
        model_id=model_id, page_size=page_size, page_token=page_token
    )
    response = await backend.models.ListModelVersions(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return schemas.VersionList(
        versions=[converters.version(v) for v in response.model_versions],
        next_page_token=response.next_page_token,
    )


@router.get(
    "/{model_id}/versions/{version}",
    response_model=schemas.ModelVersion,
    responses=openapi.problems(404),
)
async def get_version(
    model_id: inputs.ModelId, version: Version, backend: BackendDep
) -> schemas.ModelVersion:
    """Get one version: signature, metrics, feature importance, lineage."""
    request = ms.GetModelVersionRequest(model_id=model_id, version=version)
    response = await backend.models.GetModelVersion(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return converters.version(response.model_version)


@router.delete(
    "/{model_id}/versions/{version}",
    response_model=schemas.DeletedVersion,
    responses=openapi.problems(404, 409),
)
async def delete_version(
    model_id: inputs.ModelId, version: NamedVersion, backend: BackendDep
) -> schemas.DeletedVersion:
    """Delete one version; deleting the only version deletes the model."""
    request = ms.DeleteModelVersionRequest(model_id=model_id, version=version)
    response = await backend.models.DeleteModelVersion(
        request, timeout=backend.timeout, metadata=backend.metadata
    )
    return schemas.DeletedVersion(model_deleted=response.model_deleted)


@router.post(
    "/{model_id}/retrain",
    status_code=202,
    response_model=None,
    responses={**STARTED, **openapi.problems(404, 409, 413, 415, 429, 507)},
    openapi_extra=openapi.training_body(
        inputs.RetrainSpec, inputs.RetrainRequest, False, examples.RETRAIN_REQUEST
    ),
)
async def retrain_model(
    model_id: inputs.ModelId, request: Request, backend: BackendDep, wait: inputs.Wait = False
) -> JSONResponse:
    """Train the next version, on new data (JSON rows, CSV or Arrow) or, with none, the parent's.

    Hyperparameters given replace the parent's; the rest stay. With no body at all the
    parent's data and settings are reused.
    """
    async with bodies.training_upload(
        request, backend.settings, inputs.RetrainSpec, inputs.RetrainRequest, data_required=False
    ) as upload:
        spec = converters.retrain_spec(model_id, upload.spec)
        job = await training_calls.retrain(backend, spec, upload.pieces)
    if not wait:
        return training_calls.accepted(job)
    return training_calls.finished(await training_calls.wait_for(backend, job))
