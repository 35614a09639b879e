"""A tracer that keeps a running span as a few plain fields and hands it to the SDK when it ends.

The SDK's own spans cost ~22 µs to start and ~6 to end on the service's event loop (a
lock, bounded attribute and event containers, the sampler's parent lookup and a copy at the
end, each built for every span); a one-row Predict makes three, which was most of what
tracing added to its p50 (x1.13). This tracer keeps what a span is (the provider's sampler,
id generator, resource, span processors and exporters, so OTEL_* configuration and a
test's in-memory exporter work as with the SDK's tracer) and records only what the span is
given; at its end the span itself, a `ReadableSpan` as the SDK's own spans are, goes to
the provider's processors, on an event loop in its next turn, once the call's answer is
sent (docs/performance.md: x1.04-1.08 with every call traced).

What it leaves out: span processors' `on_start` (the SDK's batch and simple processors do
nothing there), span limits (our spans carry a handful of attributes; events are capped at
the SDK's default of 128), and the sampler for a span whose parent is a sampled local span
of this process: it takes the parent's decision, as the parent-based samplers (the default)
and the trace-id-ratio samplers would."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types
from opentelemetry.util._decorator import _AgnosticContextManager, _agnosticcontextmanager

MAX_EVENTS = 128  # the SDK's default span limit
UNSET = Status(StatusCode.UNSET)

#: The span current in this task or thread, when the service made it current. Ours rather
#: than OpenTelemetry's context: making a span current there copies the context's mapping
#: and goes through three layers of calls each way, and a one-row Predict makes two spans
#: current and looks the current one up four times (docs/performance.md). Nothing in the
#: service reads OpenTelemetry's context but through `current_span` and `current_context`.
CURRENT: ContextVar[trace.Span | None] = ContextVar("ml_service_current_span", default=None)


def current_span() -> trace.Span:
    """The current span: the service's, else whatever OpenTelemetry's context holds."""
    span = CURRENT.get()
    return span if span is not None else trace.get_current_span()


def current_context() -> otel_context.Context:
    """The current span as OpenTelemetry's context, for work that starts later (a job)."""
    span = CURRENT.get()
    return trace.set_span_in_context(span) if span is not None else otel_context.get_current()


@_agnosticcontextmanager
def as_current(
    span: trace.Span,
    end_on_exit: bool = True,
    record_exception: bool = True,
    set_status_on_exception: bool = True,
) -> Iterator[trace.Span]:
    """Make `span` current for a block, as the SDK's `use_span` does in its context."""
    token = CURRENT.set(span)
    try:
        yield span
    except Exception as error:  # like the SDK: not GeneratorExit or a cancellation
        if span.is_recording():
            if record_exception:
                span.record_exception(error)
            if set_status_on_exception:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        raise
    finally:
        CURRENT.reset(token)
        if end_on_exit:
            span.end()


class Tracer(trace.Tracer):
    """Start spans whose ids, sampling and export come from `provider`."""

    def __init__(self, provider: TracerProvider, name: str) -> None:
        sdk = cast(SdkTracer, provider.get_tracer(name))
        self._sampler = sdk.sampler
        # The SDK's default (no OTEL_TRACES_SAMPLER): a new trace is sampled and a parent's
        # decision kept, which start_span decides without the sampler's calls.
        self._parent_based_on = sdk.sampler is sampling.DEFAULT_ON
        # As the SDK, a new trace says whether its id is random (W3C trace context level 2).
        self._random_ids = sdk.id_generator.is_trace_id_random()
        flags = TraceFlags.SAMPLED | (TraceFlags.RANDOM_TRACE_ID if self._random_ids else 0)
        self._new_trace_flags = TraceFlags(flags)
        self._ids = sdk.id_generator
        self._processor = sdk.span_processor
        self.resource = ResourceHashedOnce(sdk.resource)
        self.scope = InstrumentationScope(name)
        self._ended: dict[asyncio.AbstractEventLoop, list[ReadableSpan]] = {}
        # This tracer's spans: what every one of them holds the same is its class's, so a
        # span starts with four fields set (a one-row Predict starts three, where every
        # line run is paid for several times over, the call's other work having evicted it
        # from the CPU's caches).
        self._span = cast(
            type[Span],
            type(
                "Span",
                (Span,),
                {
                    "__module__": __name__,
                    "_tracer": self,
                    "_resource": self.resource,
                    "_instrumentation_scope": self.scope,
                },
            ),
        )

    def start_child(self, name: str) -> trace.Span | None:
        """A span named `name` under the current one; None inside a trace the sampler dropped.

        start_span's answer for a local parent, without its other cases.
        """
        parent = current_span().get_span_context()
        if not parent.is_valid or (parent.is_remote and not self._parent_based_on):
            return self.start_span(name)
        if not parent.trace_flags.sampled:
            return None
        context = SpanContext(
            parent.trace_id,
            self._ids.generate_span_id(),
            False,
            parent.trace_flags,
            parent.trace_state,
        )
        return self._span(name, context, parent, time.time_ns())

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        if context is None:
            parent = current_span().get_span_context()
        elif context:
            parent = trace.get_current_span(context).get_span_context()
        else:  # an empty context (a call no caller's trace came with) holds no parent
            parent = trace.INVALID_SPAN_CONTEXT
        span_id = self._ids.generate_span_id()
        if (
            parent.is_valid
            and parent.trace_flags.sampled
            and (self._parent_based_on or not parent.is_remote)
        ):
            span_context = SpanContext(
                parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state
            )
        elif self._parent_based_on and not parent.is_valid:
            trace_id = self._ids.generate_trace_id()
            span_context = SpanContext(trace_id, span_id, False, self._new_trace_flags)
        else:
            trace_id = parent.trace_id if parent.is_valid else self._ids.generate_trace_id()
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes, links)
            flags = TraceFlags.SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else 0
            random = parent.trace_flags.random_trace_id if parent.is_valid else self._random_ids
            if random:
                flags |= TraceFlags.RANDOM_TRACE_ID
            span_context = SpanContext(
                trace_id, span_id, False, TraceFlags(flags), result.trace_state
            )
            if result.decision is Decision.DROP:
                return trace.NonRecordingSpan(span_context)
            # A sampler may add attributes to the caller's (the SDK's samplers pass them on).
            attributes = result.attributes
        span = self._span(
            name, span_context, parent if parent.is_valid else None, start_time or time.time_ns()
        )
        # Set only where they differ from the class's: most spans are internal, plain ones.
        if kind is not SpanKind.INTERNAL:
            span._kind = kind
        if attributes:
            span._attributes = dict(attributes)
        if links:
            span._links = tuple(links)
        if not record_exception:
            span._record_exception = False
        if not set_status_on_exception:
            span._set_status_on_exception = False
        return span

    def start_as_current_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _AgnosticContextManager[trace.Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return as_current(span, end_on_exit, record_exception, set_status_on_exception)

    def finish(self, span: ReadableSpan) -> None:
        """Hand an ended span to the provider's processors; on an event loop, in its next turn.

        A call's spans end before its answer is sent; what the processors do with them (the
        batch queue, a process id check, waking the export thread: ~1 µs a span in-process,
        several times that amid a call's other work) then runs once the answer is on its
        way: a one-row Predict's p50 with 200 µs of work moved so was +58 µs instead of
        +270. Off a loop (a training thread) the processors get the span at once.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._processor.on_end(span)
            return
        # Only the loop's own thread touches its list, so no lock.
        ended = self._ended.get(loop)
        if ended is None:
            self._ended[loop] = [span]
            loop.call_soon(self._hand_over, loop)
        else:
            ended.append(span)

    def flush(self) -> None:
        """Hand over the spans still waiting for a loop's turn (at exit, once loops stopped)."""
        for loop in list(self._ended):
            self._hand_over(loop)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        for span in self._ended.pop(loop, ()):
            self._processor.on_end(span)


class ResourceHashedOnce(Resource):
    """A resource that computes its hash once.

    The OTLP encoder groups a batch's spans by resource, hashing each span's: the SDK's
    resource hashes by writing its attributes out as sorted JSON, a third of the export
    thread's CPU per span (13.7 -> 9.6 µs), and that thread takes the GIL from the calls.
    A resource never changes, so neither does its hash.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


class Span(trace.Span, ReadableSpan):
    """A recording span that is, once ended, the `ReadableSpan` the processors are handed.

    As the SDK's own span, it is both; but a running span is only its fields, with no lock
    (a span is made, changed and ended by one task or thread), and no containers until
    something is put in them: every container object a span keeps alive in the export queue
    is work for the garbage collector on the event loop.

    ReadableSpan's fields that start alike in every span are class attributes, until a span
    sets its own; its tracer, resource and scope are those of the subclass each Tracer makes.
    """

    _tracer: Tracer
    _kind = SpanKind.INTERNAL
    _attributes: dict[str, types.AttributeValue] | None = None
    _events: tuple[Event, ...] = ()
    _links: tuple[trace.Link, ...] = ()
    _instrumentation_info = None
    _status = UNSET
    _end_time: int | None = None
    _record_exception = True
    _set_status_on_exception = True

    def __init__(
        self, name: str, context: SpanContext, parent: SpanContext | None, start_time: int
    ) -> None:
        # ReadableSpan's fields, set directly: its __init__ would build a Resource.
        self._name = name
        self._context = context
        self._parent = parent
        self._start_time = start_time

    def get_span_context(self) -> SpanContext:
        return cast(SpanContext, self._context)

    def is_recording(self) -> bool:
        return self._end_time is None

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is None:
            self._end_time = end_time or time.time_ns()
            self._tracer.finish(self)

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self._end_time is None:
            self._attributes = {**(self._attributes or {}), **attributes}

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is None:
            if self._attributes is None:
                self._attributes = {key: value}
            else:
                self._attributes[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is None and len(self._events) < MAX_EVENTS:
            event = Event(name, dict(attributes or {}), timestamp or time.time_ns())
            self._events += (event,)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links = (*self._links, trace.Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, and only an error carries a description.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        error_type = type(exception)
        module = error_type.__module__
        recorded: dict[str, Any] = {
            "exception.type": error_type.__qualname__
            if module in ("builtins", "")
            else f"{module}.{error_type.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        recorded.update(attributes or {})
        self.add_event("exception", recorded, timestamp)

    def __exit__(self, error_type: Any, error: Any, error_traceback: Any) -> None:
        if isinstance(error, Exception) and self._end_time is None:
            if self._record_exception:
                self.record_exception(error, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.end()
