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
# Why a call is refused, told apart: one "missing or invalid" left a person who sent the
# word Bearer twice, or a token from another deployment, to guess which.
NO_TOKEN = "this service needs a bearer token: send the header authorization: Bearer <token>"
NOT_BEARER = "the authorization header is not a bearer token: send authorization: Bearer <token>"
UNKNOWN_TOKEN = "the bearer token is not one this service accepts"


def token_matches(presented: str, tokens: Sequence[bytes]) -> bool:
    """Compare in constant time against every configured token."""
    candidate = presented.encode()
    # Compare against all tokens so timing does not reveal which one nearly matched.
    return sum(hmac.compare_digest(candidate, token) for token in tokens) > 0


def refusal(metadata: Sequence[tuple[str, str | bytes]] | None, tokens: Sequence[bytes]) -> str:
    """Why a call with this metadata is refused, or "" when its bearer token is accepted."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return NOT_BEARER
            return "" if token_matches(token.strip(), tokens) else UNKNOWN_TOKEN
    return NO_TOKEN


def _deny(handler: Any, method: str, telemetry: Telemetry, reason: str) -> Any:
    # In the handler, not the interceptor: the call's own task, so its request id and
    # trailer are the call's, and it is counted in mlops_rpc_requests_total like the rest.
    async def unary(request: Any, context: Any) -> Any:
        await refuse(context, telemetry, method, UNAUTHENTICATED, reason)

    async def streaming(request: Any, context: Any) -> Any:
        await refuse(context, telemetry, method, UNAUTHENTICATED, reason)
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
        reason = refusal(handler_call_details.invocation_metadata, self._tokens)
        return _deny(handler, method, self._telemetry, reason) if reason else handler
