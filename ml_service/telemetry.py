"""Telemetry the core is given: its metrics, its tracer, and how the environment turns export on.

Tracing is on only with an OTLP endpoint in the standard OTEL_EXPORTER_OTLP_* variables (or
a provider a test hands in); otherwise no span is started at all, so it costs nothing. Inside
a call whose trace the sampler dropped, no child span is started either: the SDK would only
make non-recording ones, at several microseconds each on a path that takes a millisecond.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, TypeVar, cast

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from ml_service import tracing
from ml_service.metrics import ServiceMetrics

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class Telemetry:
    """Metrics on a registry, and a tracer provider when tracing is on."""

    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics(CollectorRegistry()))
    tracer_provider: TracerProvider | None = None
    tracer: trace.Tracer = field(init=False)

    def __post_init__(self) -> None:
        if self.tracer_provider is None:
            self.tracer = trace.NoOpTracer()
        else:
            self.tracer = tracing.Tracer(self.tracer_provider, "ml_service")

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded."""
        return self.tracer_provider is not None

    def shutdown(self) -> None:
        """Export what is left of the spans; call once, at exit."""
        if self.tracer_provider is not None:
            if isinstance(self.tracer, tracing.Tracer):
                self.tracer.flush()
            self.tracer_provider.shutdown()

    def child_span(self, name: str) -> trace.Span | None:
        """A span named `name` under the current one, or None: not tracing, or in a trace
        the sampler dropped (decided by one look at the parent)."""
        if not isinstance(self.tracer, tracing.Tracer):
            return None
        return self.tracer.start_child(name)

    @contextmanager
    def store_operation(self, operation: str) -> Iterator[None]:
        """Time a store operation, in a span when traced."""
        started = time.perf_counter()
        try:
            span = self.child_span(f"store.{operation}")
            if span is None:
                yield
            else:
                with CurrentSpan(span):
                    yield
        finally:
            self.metrics.store_done(operation, time.perf_counter() - started)


class CurrentSpan:
    """Make a started span current for a block, record what escapes it, end it.

    What the SDK's start_as_current_span does, without its two layers of generator-based
    context managers, which cost more than the span on a one-row predict.
    """

    __slots__ = ("_errors", "_token", "span")

    def __init__(self, span: trace.Span, errors: bool = True) -> None:
        """`errors=False`: the block records its errors itself (what escapes is not news)."""
        self.span = span
        self._errors = errors
        self._token: Token[trace.Span | None] | None = None

    def __enter__(self) -> trace.Span:
        self._token = tracing.CURRENT.set(self.span)
        return self.span

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        error_traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            tracing.CURRENT.reset(self._token)
        # Like the SDK: only Exception is an error (not GeneratorExit or a cancellation).
        if self._errors and isinstance(error, Exception):
            record_error(self.span, error)
        self.span.end()


def record_error(span: trace.Span, error: Exception) -> None:
    """Mark `span` failed by `error`, as the SDK marks a span an exception escapes."""
    if span.is_recording():
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))


async def current_in_steps(span: trace.Span, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate `items` with `span` current while each item is made.

    A generator can be suspended in one task and closed from another (or by the garbage
    collector), where detaching a context attached across its `yield` fails; attached and
    detached within each step, the span is current for the work inside (child spans, store
    operations) and never across a `yield`.
    """
    while True:
        token = tracing.CURRENT.set(span)
        try:
            item = await anext(items)
        except StopAsyncIteration:
            return
        finally:
            tracing.CURRENT.reset(token)
        yield item


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

    provider = TracerProvider(resource=resource_named(service_name))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def resource_named(service_name: str) -> Resource:
    """The process's resource, named `service_name` unless OTEL_* variables name it."""
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, and names what
    # neither names "unknown_service:python"; merged over ours, that default hid our name.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        return resource.merge(Resource({"service.name": service_name}))
    return resource


class Observed(Protocol):
    """An object with telemetry, such as the core."""

    telemetry: Telemetry


def use_case(fn: F) -> F:
    """Run a core method (coroutine or async generator) in a span named after it, if tracing."""
    name = f"core.{fn.__name__}"
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def generator(self: Observed, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            span = self.telemetry.child_span(name)
            if span is None:
                async for item in fn(self, *args, **kwargs):
                    yield item
                return
            try:
                async for item in current_in_steps(span, fn(self, *args, **kwargs)):
                    yield item
            except Exception as error:
                record_error(span, error)
                raise
            finally:
                span.end()

        return cast(F, generator)

    @functools.wraps(fn)
    async def coroutine(self: Observed, *args: Any, **kwargs: Any) -> Any:
        span = self.telemetry.child_span(name)
        if span is None:
            return await fn(self, *args, **kwargs)
        with CurrentSpan(span):
            return await fn(self, *args, **kwargs)

    return cast(F, coroutine)
