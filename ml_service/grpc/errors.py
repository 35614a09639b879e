"""The one table from domain errors to gRPC status, and the per-RPC wrapper that applies it."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar, cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from mlops import names
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from ml_service.errors import (
    FailedPrecondition,
    InvalidArgument,
    NoSpace,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from ml_service.logs import REQUEST_ID
from ml_service.telemetry import CurrentSpan, Telemetry, current_in_steps, record_error
from ml_service.tracing import current_span

log = logging.getLogger("ml_service.rpc")

STATUS_OF: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}

# Errors that share a code but need telling apart (a gateway answers 507, not 413, for a
# full disk) carry an ErrorInfo reason in this domain.
REASON_OF: dict[type[ServiceError], str] = {NoSpace: "NO_SPACE"}
ERROR_DOMAIN = "mlops.v1"

DETAILS_KEY = "grpc-status-details-bin"
REQUEST_ID_KEY = names.REQUEST_ID_KEY
_GOOD_ID = re.compile(names.REQUEST_ID_PATTERN)
# A servicer without a core (none today) is served without metrics.
_UNOBSERVED = Telemetry()
# The metadata keys the propagators configured at start-up read (traceparent, tracestate,
# baggage); a call that sends none of them starts a new trace, with nothing to extract.
_PROPAGATED = frozenset(propagate.get_global_textmap().fields)
_NO_PARENT = otel_context.Context()
# Status text and details travel in trailers, which clients cap at 8 KiB by default.
MESSAGE_LIMIT = 600
MAX_VIOLATIONS = 8

# grpc ships no type information, so its objects are Any to mypy.
Ctx: TypeAlias = Any
Unary = TypeVar("Unary", bound=Callable[..., Awaitable[Any]])
Streaming = TypeVar("Streaming", bound=Callable[..., AsyncIterator[Any]])


def status_code_of(error: ServiceError) -> grpc.StatusCode:
    """Return the gRPC code for a domain error."""
    for cls in type(error).__mro__:
        code = STATUS_OF.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def clip(text: str, limit: int) -> str:
    """Shorten text to `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rich_status(error: ServiceError, code: grpc.StatusCode) -> status_pb2.Status:
    """Build a google.rpc.Status with the details a client needs: violations, reason, retry."""
    status = status_pb2.Status(code=code.value[0], message=clip(error.message, MESSAGE_LIMIT))
    if isinstance(error, InvalidArgument) and error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=clip(v.field, 100), description=clip(v.description, 200)
                )
                for v in error.violations[:MAX_VIOLATIONS]
            ]
        )
        status.details.add().Pack(bad_request)
    reason = REASON_OF.get(type(error))
    if reason is not None:
        status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    if isinstance(error, ResourceExhausted) and error.retry_after_seconds is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromTimedelta(timedelta(seconds=error.retry_after_seconds))
        status.details.add().Pack(retry)
    return status


async def _abort(context: Ctx, error: Exception) -> None:
    # abort() replaces the trailers set before it, so the request id goes again.
    request_id = ((REQUEST_ID_KEY, REQUEST_ID.get()),)
    if isinstance(error, ServiceError):
        code = status_code_of(error)
        status = rich_status(error, code)
        details = ((DETAILS_KEY, status.SerializeToString()),)
        await context.abort(code, status.message, trailing_metadata=details + request_id)
    log.exception("unexpected error", exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error", trailing_metadata=request_id)


def _telemetry(servicer: Any) -> Telemetry:
    core = getattr(servicer, "_core", None)
    return core.telemetry if core is not None else _UNOBSERVED


def _incoming(context: Ctx) -> tuple[str, dict[str, str] | None]:
    """Read the caller's request id (if well formed) and trace headers (if any) in one pass."""
    request_id = ""
    carrier: dict[str, str] | None = None
    for key, value in context.invocation_metadata() or ():
        if not isinstance(value, str):
            continue
        if key == REQUEST_ID_KEY:
            if not request_id and _GOOD_ID.fullmatch(value):
                request_id = value
        elif key in _PROPAGATED:
            carrier = carrier or {}
            carrier[key] = value
    return request_id, carrier


def _rpc_span(
    servicer: Any, telemetry: Telemetry, fn: Callable[..., Any], carrier: dict[str, str] | None
) -> trace.Span:
    """Start the call's server span, a child of the caller's traceparent if it sent one.

    Written here rather than taken from opentelemetry-instrumentation-grpc: its interceptor
    cost ~0.1 ms on every call even when the sampler dropped the trace.
    """
    parent = propagate.extract(carrier) if carrier else _NO_PARENT
    name = _SPAN_NAMES.get((type(servicer), fn.__name__))
    if name is None:
        # Named as gRPC's OpenTelemetry conventions name server spans: /package.Service/Method.
        service = getattr(servicer, "SERVICE_NAME", type(servicer).__name__)
        name = _SPAN_NAMES[(type(servicer), fn.__name__)] = f"/{service}/{fn.__name__}"
    return telemetry.tracer.start_span(name, context=parent, kind=SpanKind.SERVER)


_SPAN_NAMES: dict[tuple[type, str], str] = {}


def _name_request(context: Ctx, request_id: str, span: trace.Span | None) -> None:
    """Name the request (the caller's id, else the trace id, else a new one) everywhere."""
    if not request_id:
        span_context = span.get_span_context() if span is not None else None
        if span_context is not None and span_context.is_valid:
            request_id = trace.format_trace_id(span_context.trace_id)
        else:
            request_id = os.urandom(16).hex()
    # Each RPC runs in its own task, so the id set here stays with this call's context.
    REQUEST_ID.set(request_id)
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))


def _log(telemetry: Telemetry, method: str, started: float, code: str) -> None:
    seconds = time.perf_counter() - started
    telemetry.metrics.rpc_done(method, code, seconds)
    level = logging.INFO if code in ("OK", "CANCELLED") else logging.WARNING
    if log.isEnabledFor(level):
        duration_ms = round(seconds * 1000, 3)
        if code == "OK":
            # Written in the event loop's next turn, once the answer is on its way (in this
            # call's context, so with its request id): formatting and writing the line took
            # ~18 µs of a one-row Predict's handler. A failure's line is written at once.
            asyncio.get_running_loop().call_soon(_rpc_line, level, method, code, duration_ms)
        else:
            _rpc_line(level, method, code, duration_ms)


def _rpc_line(level: int, method: str, code: str, duration_ms: float) -> None:
    log.log(level, "rpc", extra={"method": method, "code": code, "duration_ms": duration_ms})


async def refuse(
    context: Ctx, telemetry: Telemetry, method: str, code: grpc.StatusCode, message: str
) -> None:
    """End a call no handler ran (an interceptor refused it), counted and named like any other.

    `method` is the full gRPC path (/package.Service/Method); its last part is the label, as
    the handlers' names are.
    """
    started = time.perf_counter()
    request_id, _ = _incoming(context)
    _name_request(context, request_id, None)
    _log(telemetry, method.rsplit("/", 1)[-1], started, code.name)
    await context.abort(code, message, trailing_metadata=((REQUEST_ID_KEY, REQUEST_ID.get()),))


#: The service's deadline is the client's, counted from when the call arrived: the client's
#: cancellation at its deadline can reach the service a few milliseconds before its own.
DEADLINE_SLACK = 0.1


def _or_deadline(context: Ctx, code: str) -> str:
    """DEADLINE_EXCEEDED if the client's deadline (when it set one) has passed, else `code`."""
    # grpc.aio cancels a handler alike whether the client went away or its deadline passed,
    # and ends a request stream the deadline cuts off as if the client had closed it: the
    # handler may then refuse what it got (a spec and no rows) or end as if done.
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= DEADLINE_SLACK else code


def _code_of(error: Exception) -> str:
    return status_code_of(error).name if isinstance(error, ServiceError) else "INTERNAL"


def unary(fn: Unary) -> Unary:
    """Wrap a unary-response handler: map errors to statuses and log one line per call."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Ctx) -> Any:
        started = time.perf_counter()
        telemetry = _telemetry(self)
        request_id, carrier = _incoming(context)
        if not telemetry.tracing:
            _name_request(context, request_id, None)
            return await handle(self, request, context, telemetry, started)
        span = _rpc_span(self, telemetry, fn, carrier)
        _name_request(context, request_id, span)
        # What escapes is the abort that carries the status; handle records the cause.
        with CurrentSpan(span, errors=False):
            return await handle(self, request, context, telemetry, started)

    async def handle(
        self: Any, request: Any, context: Ctx, telemetry: Telemetry, started: float
    ) -> Any:
        try:
            response = await fn(self, request, context)
        except asyncio.CancelledError:
            _log(telemetry, fn.__name__, started, _or_deadline(context, "CANCELLED"))
            raise
        except Exception as error:
            _log(telemetry, fn.__name__, started, _or_deadline(context, _code_of(error)))
            if telemetry.tracing:
                record_error(current_span(), error)
            await _abort(context, error)
            raise
        _log(telemetry, fn.__name__, started, "OK")
        return response

    return cast(Unary, wrapper)


def streaming(fn: Streaming) -> Streaming:
    """Wrap a streaming-response handler like `unary` does."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Ctx) -> AsyncIterator[Any]:
        started = time.perf_counter()
        telemetry = _telemetry(self)
        request_id, carrier = _incoming(context)
        span = _rpc_span(self, telemetry, fn, carrier) if telemetry.tracing else None
        _name_request(context, request_id, span)
        items = fn(self, request, context)
        try:
            async for item in items if span is None else current_in_steps(span, items):
                yield item
        except (asyncio.CancelledError, GeneratorExit):
            _log(telemetry, fn.__name__, started, _or_deadline(context, "CANCELLED"))
            raise
        except Exception as error:
            _log(telemetry, fn.__name__, started, _or_deadline(context, _code_of(error)))
            if span is not None:
                record_error(span, error)
            await _abort(context, error)
            raise
        finally:
            if span is not None:
                span.end()
        # A handler reading a request stream the deadline cut off returns as if it were done.
        # One read per stream, not per message.
        _log(telemetry, fn.__name__, started, _or_deadline(context, "OK"))

    return cast(Streaming, wrapper)
