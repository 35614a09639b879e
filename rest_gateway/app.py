"""Build the FastAPI app: one gRPC channel for its lifetime, routers by resource, problems."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import grpc
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_gateway import docs, openapi, problems, tabular, telemetry
from rest_gateway.backend import Backend, ChannelFactory, open_channel
from rest_gateway.bodies import BodyLimitMiddleware, ContentDecodingMiddleware
from rest_gateway.config import GatewaySettings
from rest_gateway.routes import health, jobs, kinds, models, open_inference, predictions

DESCRIPTION = """\
REST and JSON in front of the gRPC model service: train CatBoost and logistic-regression
classifiers from JSON rows, CSV or Arrow IPC, follow training jobs, manage model versions
and predict. Errors are RFC 9457 problem details (`application/problem+json`).

Try it: **POST /v1/jobs?wait=true** with the JSON example trains a small penguins model;
copy its `model_id` into **POST /v1/models/{model_id}/predict** with the example rows.
"""


class HeadMiddleware:
    """Answer HEAD as GET without the body (RFC 9110, 9.3.2), outside /v2.

    Uptime monitors and `curl -I` probe with HEAD; FastAPI routes only the methods declared,
    so HEAD /healthz was a 405. The headers are the GET's, Content-Length too; a stream (job
    events) ends with them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run HEAD requests as GET and send only the response's start."""
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or not problems.takes_head(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        answered = False

        async def headers_only(message: Message) -> None:
            nonlocal answered
            if answered:
                return
            await send(message)
            if message["type"] == "http.response.start":
                answered = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class TrailingSlashMiddleware:
    """Route /v1 paths ending in a slash as the same path without it.

    Starlette answers them with a 307 to the path without the slash: an empty answer for
    `curl -X POST` and httpx, which follow no redirect, and a redirect to plain http behind a
    proxy that ends TLS.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Drop the trailing slashes of a /v1 path before routing."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/v1/") and path.endswith("/") and path.strip("/") != "v1":
            scope = {**scope, "path": path.rstrip("/")}
        await self.app(scope, receive, send)


class RepeatedQueryMiddleware:
    """Refuse a /v1 query that gives a parameter twice (`?version=1&version=2`).

    FastAPI keeps the last: the call would use a version, a page or a wait the caller may not
    have meant, without a word (the training spec's fields say so in the same words).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 400 naming the first parameter given twice; pass everything else on."""
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query and scope["path"].startswith("/v1/"):
            # As Starlette reads a query, so the names are the ones the routes see.
            names = [name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)]
            twice = next((name for name in names if names.count(name) > 1), None)
            if twice is not None:
                refused = problems.ProblemError.invalid(
                    twice, "is given more than once; give it once"
                )
                await problems.problem_response(Request(scope), refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: GatewaySettings,
    channel_factory: ChannelFactory = open_channel,
    observability: telemetry.GatewayTelemetry | None = None,
) -> FastAPI:
    """Build the gateway app; the channel opens in the lifespan and closes after it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # Off the loop and before serving, or the first JSON request stalls every other.
        await to_thread.run_sync(tabular.warm_up)
        channel = channel_factory(settings)
        try:
            yield {"backend": Backend(channel, settings)}
        finally:
            await channel.close()

    app = FastAPI(
        title="MLOps model service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    # Predictions first: the hot path should match on the first router tried.
    routers = (
        predictions.router,
        kinds.router,
        jobs.router,
        models.router,
        health.router,
        open_inference.router,
    )
    for router in routers:
        app.include_router(router)
    # For the Allow header of a 405: which methods each path template takes.
    app.state.route_methods = [
        (route.path_regex, route.methods)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    app.add_exception_handler(problems.ProblemError, problems.handle_problem)
    app.add_exception_handler(grpc.aio.AioRpcError, problems.handle_rpc_error)
    app.add_exception_handler(RequestValidationError, problems.handle_validation_error)
    app.add_exception_handler(HTTPException, problems.handle_http_exception)
    # Inside the cap on the bytes sent, so both the sent and the inflated bytes are capped.
    app.add_middleware(ContentDecodingMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeadMiddleware)
    app.add_middleware(TrailingSlashMiddleware)
    app.add_middleware(RepeatedQueryMiddleware)
    app.add_middleware(problems.UnexpectedErrorMiddleware)
    telemetry.install(app, observability or telemetry.GatewayTelemetry(), settings.metrics)
    openapi.install(app)
    docs.install(app)
    # For the metrics of requests the router never names (HEAD, bodies refused before it).
    app.state.route_templates = [
        (route.path_regex, route.path)
        for route in (*app.router.routes, *(r for router in routers for r in router.routes))
        if isinstance(route, Route)
    ]
    return app
