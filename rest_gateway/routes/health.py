"""Probes: /healthz says the gateway lives, /readyz that the gRPC service is ready."""

from __future__ import annotations

import grpc
from fastapi import APIRouter
from grpc_health.v1 import health_pb2
from mlops import names

from rest_gateway import openapi, schemas
from rest_gateway.backend import BackendDep
from rest_gateway.problems import ProblemError, unreachable

READINESS = names.READINESS_SERVICE
SERVING = health_pb2.HealthCheckResponse.SERVING

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=schemas.Liveness, responses=openapi.problems())
async def healthz() -> schemas.Liveness:
    """Answer 200 while the gateway process runs."""
    return schemas.Liveness()


@router.get("/readyz", response_model=schemas.Readiness, responses=openapi.problems())
async def readyz(backend: BackendDep) -> schemas.Readiness:
    """Answer 200 only while the gRPC readiness status is SERVING, else 503."""
    request = health_pb2.HealthCheckRequest(service=READINESS)
    try:
        timeout = backend.settings.probe_timeout_seconds
        response = await backend.health.Check(request, timeout=timeout, metadata=backend.metadata)
    except grpc.aio.AioRpcError as error:
        # A probe's reader is the operator: why, without the address (it is in the log).
        why = unreachable(error) if error.code() is grpc.StatusCode.UNAVAILABLE else None
        cause = f": {why[1]}" if why else f" ({error.code().name})"
        raise ProblemError(
            503, f"The model service is not reachable{cause}.", code="UNAVAILABLE"
        ) from None
    if response.status != SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        raise ProblemError(503, f"The model service is not ready ({status}).", code="UNAVAILABLE")
    return schemas.Readiness()
