"""Bearer-token authentication for every RPC except the health service."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

log = logging.getLogger("ml_service.rpc")

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)


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


def _deny(handler: Any) -> Any:
    async def unary(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

    async def streaming(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
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

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

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
        log.warning("rpc", extra={"method": method, "code": "UNAUTHENTICATED"})
        return _deny(handler)
