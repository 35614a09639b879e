"""Bearer-token authentication for every RPC except the health service."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from ml_service.grpc.errors import refuse
from ml_service.telemetry import Telemetry

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = "missing or invalid bearer token"


def token_matches(presented: str, tokens: Sequence[bytes]) -> bool:
    """Compare in constant time against every configured token."""
    candidate = presented.encode()
    # Compare against all tokens so timing does not reveal which one nearly matched.
    return sum(hmac.compare_digest(candidate, token) for token in tokens) > 0


def bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """Return the bearer token of an `authorization` header, or ""."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def _deny(handler: Any, method: str, telemetry: Telemetry) -> Any:
    # In the handler, not the interceptor: the call's own task, so its request id and
    # trailer are the call's, and it is counted in mlops_rpc_requests_total like the rest.
    async def unary(request: Any, context: Any) -> Any:
        await refuse(context, telemetry, method, UNAUTHENTICATED, DENIED)

    async def streaming(request: Any, context: Any) -> Any:
        await refuse(context, telemetry, method, UNAUTHENTICATED, DENIED)
        yield  # pragma: no cover - makes this an async generator

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuse calls without one of the configured tokens; health checks stay open."""

    def __init__(self, tokens: Sequence[str], telemetry: Telemetry) -> None:
        self._tokens = [t.encode() for t in tokens]
        self._telemetry = telemetry

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        if token_matches(bearer(handler_call_details.invocation_metadata), self._tokens):
            return handler
        return _deny(handler, method, self._telemetry)
