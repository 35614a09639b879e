"""The service's tracer: spans as the SDK would export them, decided by the provider's sampler."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from ml_service.telemetry import Telemetry
from ml_service.tracing import MAX_EVENTS, Tracer


def recording(sampler: Sampler | None = None) -> tuple[Tracer, InMemorySpanExporter]:
    provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracer(provider, "ml_service"), exporter


def test_nested_spans_are_one_trace_with_their_parents_kinds_and_attributes() -> None:
    tracer, exporter = recording()
    with tracer.start_as_current_span("rpc", kind=SpanKind.SERVER) as rpc:
        with tracer.start_as_current_span("core.predict"):
            leaf = tracer.start_span("model.predict", attributes={"mlops.rows": 3})
            leaf.set_attribute("mlops.version", 2)
            leaf.end()
        rpc.set_attributes({"rpc.method": "Predict"})
    leaf_span, core_span, rpc_span = exporter.get_finished_spans()
    names = [s.name for s in (leaf_span, core_span, rpc_span)]
    assert names == ["model.predict", "core.predict", "rpc"]
    assert rpc_span.parent is None and rpc_span.kind is SpanKind.SERVER
    assert core_span.parent == rpc_span.context and leaf_span.parent == core_span.context
    assert len({s.context.trace_id for s in (leaf_span, core_span, rpc_span)}) == 1
    assert dict(leaf_span.attributes or {}) == {"mlops.rows": 3, "mlops.version": 2}
    assert dict(rpc_span.attributes or {}) == {"rpc.method": "Predict"}
    assert all(s.start_time <= s.end_time for s in (leaf_span, core_span, rpc_span))  # type: ignore[operator]
    assert rpc_span.instrumentation_scope is not None
    assert rpc_span.instrumentation_scope.name == "ml_service"
    assert rpc_span.to_json()  # what the console exporter prints


def test_an_escaping_error_sets_the_status_and_records_the_exception() -> None:
    tracer, exporter = recording()
    with (
        pytest.raises(ValueError, match="no such column"),
        tracer.start_as_current_span("core.predict"),
    ):
        raise ValueError("no such column: age")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: no such column: age"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no such column: age"
    assert "no such column" in str(event.attributes["exception.stacktrace"])


def test_a_span_is_exported_once_and_changes_after_its_end_are_ignored() -> None:
    tracer, exporter = recording()
    span = tracer.start_span("store.get")
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR, "too late: OK is final")
    span.end()
    span.set_attribute("late", 1)
    span.add_event("late")
    span.end()
    (exported,) = exporter.get_finished_spans()
    assert exported.status.status_code is StatusCode.OK
    assert not exported.attributes and not exported.events
    assert not span.is_recording()


def test_events_stop_at_the_sdks_default_limit() -> None:
    tracer, exporter = recording()
    with tracer.start_as_current_span("job") as span:
        for index in range(MAX_EVENTS + 5):
            span.add_event("stage", {"index": index})
    (exported,) = exporter.get_finished_spans()
    assert len(exported.events) == MAX_EVENTS


def test_a_caller_that_did_not_sample_gets_no_span_but_its_trace_id_goes_on() -> None:
    tracer, exporter = recording()
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    span = tracer.start_span("rpc", context=parent, kind=SpanKind.SERVER)
    assert not span.is_recording()
    assert span.get_span_context().trace_id == 0xABC
    span.end()
    assert exporter.get_finished_spans() == ()


def test_a_sampled_caller_is_the_parent_of_the_server_span() -> None:
    tracer, exporter = recording()
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    tracer.start_span("rpc", context=trace.set_span_in_context(NonRecordingSpan(remote))).end()
    (span,) = exporter.get_finished_spans()
    assert span.context.trace_id == 0xABC
    assert span.parent == remote


def test_the_providers_sampler_decides_for_a_new_trace_and_its_children_follow() -> None:
    tracer, exporter = recording(TraceIdRatioBased(0.0))
    with tracer.start_as_current_span("rpc") as rpc:
        assert not rpc.is_recording()
        with tracer.start_as_current_span("core.predict") as child:
            assert not child.is_recording()
    assert exporter.get_finished_spans() == ()


def test_a_new_trace_has_the_flags_and_ids_the_sdks_own_tracer_gives() -> None:
    provider = TracerProvider()
    ours = Tracer(provider, "ml_service").start_span("rpc", kind=SpanKind.SERVER)
    theirs = provider.get_tracer("ml_service").start_span("rpc", kind=SpanKind.SERVER)
    assert ours.get_span_context().trace_flags == theirs.get_span_context().trace_flags
    assert ours.get_span_context().trace_id != theirs.get_span_context().trace_id
    assert ours.get_span_context().is_valid and not ours.get_span_context().is_remote


@pytest.mark.parametrize("sampler", [None, TraceIdRatioBased(1.0)], ids=["default", "ratio"])
def test_a_sampled_callers_trace_goes_on_under_either_sampler(sampler: Sampler | None) -> None:
    tracer, exporter = recording(sampler)
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracer.start_as_current_span(
        "rpc", context=trace.set_span_in_context(NonRecordingSpan(remote))
    ):
        tracer.start_span("core.predict").end()
    child, rpc = exporter.get_finished_spans()
    assert rpc.parent == remote and child.parent == rpc.context
    assert {child.context.trace_id, rpc.context.trace_id} == {0xABC}


def test_a_span_ended_on_an_event_loop_is_exported_in_the_loops_next_turn() -> None:
    tracer, exporter = recording()

    async def call() -> tuple[int, int]:
        tracer.start_span("rpc").end()
        before = len(exporter.get_finished_spans())
        await asyncio.sleep(0)
        return before, len(exporter.get_finished_spans())

    assert asyncio.run(call()) == (0, 1)


def test_shutdown_exports_the_spans_a_stopped_loop_left_waiting() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider=provider)
    loop = asyncio.new_event_loop()

    def last_call() -> None:
        telemetry.tracer.start_span("rpc").end()
        loop.stop()  # before the turn that would hand the span over

    loop.call_soon(last_call)
    loop.run_forever()
    loop.close()
    assert exporter.get_finished_spans() == ()
    telemetry.shutdown()
    assert [span.name for span in exporter.get_finished_spans()] == ["rpc"]
