"""Gateway metrics by route template, the /metrics route, request ids and request spans.

The request-id middleware sits outside the app's own middleware, so problem bodies rendered
anywhere inside can name the id; the OpenTelemetry middleware, when tracing, sits outside
it in turn, so the id is the trace id.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_gateway import request_ids

METRICS_PATH = "/metrics"
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# A path that matched no route: its text is the client's, so it never becomes a label.
UNMATCHED = "unmatched"
# Any other method token is the client's text too (PROPFIND, BREW, a scanner's junk).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


class GatewayMetrics:
    """The gateway's request metrics on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "mlops_gateway_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "mlops_gateway_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


@dataclass
class GatewayTelemetry:
    """The gateway's metrics, and a tracer provider when tracing is on."""

    metrics: GatewayMetrics = field(default_factory=lambda: GatewayMetrics(CollectorRegistry()))
    tracer_provider: TracerProvider | None = None


def from_env() -> GatewayTelemetry:
    """Telemetry of the gateway process: metrics with the process's own, OTLP if configured."""
    return GatewayTelemetry(GatewayMetrics(process_registry()), provider_from_env("rest_gateway"))


def process_registry() -> CollectorRegistry:
    """A registry with the process's own metrics (memory, CPU, open files) already on it."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def provider_from_env(service_name: str) -> TracerProvider | None:
    """A provider exporting over OTLP/HTTP when an endpoint is configured, else None.

    The service has the same rule (ml_service.telemetry); the gateway imports nothing of it.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not any(os.environ.get(name) for name in endpoints):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, and names what
    # neither names "unknown_service:python"; merged over ours, that default hid our name.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class ObservabilityMiddleware:
    """Give each request an id (header, log lines, problems) and count it by route template."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request with its id set; record its status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        caller_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                caller_id = value.decode("latin-1")
                break
        request_id = request_ids.choose(caller_id)
        token = request_ids.REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_ids.REQUEST_ID.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", None) or route_template(scope)
            if template != METRICS_PATH:
                method = scope["method"] if scope["method"] in METHODS else OTHER_METHOD
                labels = (method, template, str(status))
                self.metrics.requests.labels(*labels).inc()
                self.metrics.seconds.labels(*labels).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The template of the route a request the router never named was meant for, or UNMATCHED.

    The router names the route on the scope it is handed; HEAD and a /v1 path's trailing
    slash reach it as a copy, and a body refused before routing (413, a broken gzip) never
    does, so each was counted as a path that matches nothing. Only those requests (and real
    404s) pay for matching the templates here.
    """
    app = scope.get("app")
    templates = getattr(getattr(app, "state", None), "route_templates", ())
    path = scope["path"].rstrip("/") or "/"
    for regex, template in templates:
        if regex.match(path):
            return str(template)
    return UNMATCHED


def install(app: FastAPI, telemetry: GatewayTelemetry, serve_metrics: bool) -> None:
    """Add /metrics, the request-id and metrics middleware and, when tracing, request spans."""
    metrics, tracer_provider = telemetry.metrics, telemetry.tracer_provider
    if serve_metrics:

        async def scrape(request: Request) -> Response:
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

        app.add_route(METRICS_PATH, scrape, include_in_schema=False)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    if tracer_provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracer_provider,
            excluded_urls=METRICS_PATH.lstrip("/"),
            # Spans for each body chunk sent or received would swamp the request's own.
            exclude_spans=["receive", "send"],
        )


def outgoing_metadata() -> list[tuple[str, str]]:
    """The request id and the W3C trace context to send to the service with a call."""
    carrier: dict[str, Any] = {}
    propagate.inject(carrier)
    request_id = request_ids.REQUEST_ID.get()
    pairs = [(key, str(value)) for key, value in carrier.items()]
    return [(request_ids.HEADER, request_id), *pairs] if request_id else pairs
