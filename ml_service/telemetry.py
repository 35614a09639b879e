"""Telemetry the core is given: its metrics, its tracer, and how the environment turns export on.

Tracing is on only with an OTLP endpoint in the standard OTEL_EXPORTER_OTLP_* variables (or
a provider a test hands in); otherwise no span is started at all, so it costs nothing.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from ml_service.metrics import ServiceMetrics

F = TypeVar("F", bound=Callable[..., Any])
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class Telemetry:
    """Metrics on a registry, and a tracer provider when tracing is on."""

    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics(CollectorRegistry()))
    tracer_provider: TracerProvider | None = None
    tracer: trace.Tracer = field(init=False)

    def __post_init__(self) -> None:
        provider = self.tracer_provider or trace.NoOpTracerProvider()
        self.tracer = provider.get_tracer("ml_service")

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded."""
        return self.tracer_provider is not None

    @contextmanager
    def store_operation(self, operation: str) -> Iterator[None]:
        """Time a store operation, in a span when tracing."""
        started = time.perf_counter()
        try:
            if self.tracer_provider is None:
                yield
            else:
                with self.tracer.start_as_current_span(f"store.{operation}"):
                    yield
        finally:
            seconds = time.perf_counter() - started
            self.metrics.store_seconds.labels(operation).observe(seconds)


def from_env(service_name: str = "ml_service") -> Telemetry:
    """Telemetry of a process: metrics with the process's own, OTLP tracing if configured."""
    return Telemetry(ServiceMetrics(process_registry()), provider_from_env(service_name))


def process_registry() -> CollectorRegistry:
    """A registry with the process's own metrics (memory, CPU, open files) already on it."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def provider_from_env(service_name: str) -> TracerProvider | None:
    """A provider exporting over OTLP/HTTP when an endpoint is configured, else None."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    # Imported only when used: the exporter pulls in requests and the OTLP protos.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win over the default name.
    resource = Resource.create({"service.name": service_name}).merge(Resource.create())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Observed(Protocol):
    """An object with telemetry, such as the core."""

    telemetry: Telemetry


def use_case(fn: F) -> F:
    """Run a core method (coroutine or async generator) in a span named after it, if tracing."""
    name = f"core.{fn.__name__}"
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def generator(self: Observed, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            if not self.telemetry.tracing:
                async for item in fn(self, *args, **kwargs):
                    yield item
                return
            # Not made current: a generator may be closed from another context, where
            # detaching the span's context would fail.
            span = self.telemetry.tracer.start_span(name)
            try:
                async for item in fn(self, *args, **kwargs):
                    yield item
            finally:
                span.end()

        return cast(F, generator)

    @functools.wraps(fn)
    async def coroutine(self: Observed, *args: Any, **kwargs: Any) -> Any:
        if not self.telemetry.tracing:
            return await fn(self, *args, **kwargs)
        with self.telemetry.tracer.start_as_current_span(name):
            return await fn(self, *args, **kwargs)

    return cast(F, coroutine)
