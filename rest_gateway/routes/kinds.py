"""Model kinds and their hyperparameter specs."""

from __future__ import annotations

from fastapi import APIRouter
from mlops.v1 import model_service_pb2 as ms

from rest_gateway import converters, openapi, schemas
from rest_gateway.backend import BackendDep

router = APIRouter(prefix="/v1/kinds", tags=["kinds"])


@router.get("", response_model=schemas.KindList, responses=openapi.problems())
async def list_kinds(backend: BackendDep) -> schemas.KindList:
    """List the model kinds the service can train, with their hyperparameters."""
    response = await backend.models.ListModelKinds(
        ms.ListModelKindsRequest(), timeout=backend.timeout, metadata=backend.metadata
    )
    return schemas.KindList(kinds=[converters.kind(k) for k in response.kinds])
