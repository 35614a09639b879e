"""The service's OTLP span export: what a collector receives equals what the SDK would send."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from ml_service import otlp_export, telemetry

REMOTE = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "abc"), ("other", "x-1")]),
)


def spans_of_every_shape() -> list[ReadableSpan]:
    """Spans with all a span can carry, from two resources and three scopes."""
    kept = InMemorySpanExporter()
    for service in ("ml_service", "worker"):
        provider = TracerProvider(resource=Resource.create({"service.name": service, "n": 1}))
        provider.add_span_processor(SimpleSpanProcessor(kept))
        plain = provider.get_tracer("ml_service")
        versioned = provider.get_tracer("lib", "1.2.3", schema_url="https://example.org/s/1")
        parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
        with plain.start_as_current_span("/mlops.v1.PredictionService/Predict", parent) as rpc:
            rpc.set_attributes({"text": "é", "yes": True, "count": -7, "share": 0.25})
            rpc.set_attribute("list", ["a", "b"])
            rpc.set_attribute("numbers", [1, 2, 3])
            rpc.add_event("stage", {"stage": "fitting", "rows": 344}, timestamp=123)
            rpc.add_event("bare")
            with versioned.start_as_current_span("core.predict", kind=SpanKind.CLIENT) as core:
                core.add_link(REMOTE, {"why": "batch"})
                core.add_link(rpc.get_span_context())
                core.set_status(Status(StatusCode.ERROR, "ValueError: no rows"))
            with plain.start_as_current_span("model.predict") as model:
                model.set_status(StatusCode.OK)
        root = plain.start_span("training.job", kind=SpanKind.PRODUCER)
        root.end()
    return list(kept.get_finished_spans())


def service_name(attributes: Iterable[KeyValue]) -> str:
    """The service.name among a resource's encoded attributes."""
    return {kv.key: kv.value.string_value for kv in attributes}["service.name"]


def test_the_encoding_is_the_sdk_encoders_for_spans_of_every_shape() -> None:
    spans = spans_of_every_shape()
    ours = ExportTraceServiceRequest.FromString(otlp_export.encode(spans))
    assert ours == encode_spans(spans)
    # What a collector shows: both services, every span, the caller's trace and its state.
    assert [service_name(r.resource.attributes) for r in ours.resource_spans] == [
        "ml_service",
        "worker",
    ]
    names = {s.name for r in ours.resource_spans for ss in r.scope_spans for s in ss.spans}
    assert names == {
        "/mlops.v1.PredictionService/Predict",
        "core.predict",
        "model.predict",
        "training.job",
    }
    rpc = ours.resource_spans[0].scope_spans[0].spans[-1]
    assert rpc.trace_id == REMOTE.trace_id.to_bytes(16, "big")
    assert rpc.trace_state == "vendor=abc,other=x-1"


def test_an_empty_batch_encodes_to_an_empty_request() -> None:
    assert otlp_export.encode([]) == encode_spans([]).SerializeToString() == b""


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it receives and answers `status`."""

    bodies: list[bytes]
    status = 200

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(self.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, type[_Collector]]]:
    handler = type("Collector", (_Collector,), {"bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


def test_the_configured_service_exports_its_spans_to_the_otlp_endpoint(
    collector: tuple[str, type[_Collector]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    provider = telemetry.provider_from_env("ml_service")
    assert provider is not None
    kept = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("ml_service")
    rpc = tracer.start_span("/mlops.v1.PredictionService/Predict", kind=SpanKind.SERVER)
    with trace.use_span(rpc, end_on_exit=True), tracer.start_as_current_span("core.predict"):
        tracer.start_span("model.predict", attributes={"mlops.rows": 1}).end()
    provider.shutdown()
    sent = [ExportTraceServiceRequest.FromString(body) for body in received.bodies]
    assert sent == [encode_spans(kept.get_finished_spans())]
    assert service_name(sent[0].resource_spans[0].resource.attributes) == "ml_service"


def test_a_collector_that_refuses_the_batch_is_a_failed_export(
    collector: tuple[str, type[_Collector]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = collector
    received.status = 400
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{endpoint}/v1/traces")
    exporter = otlp_export.OTLPSpanExporter()
    assert exporter.export(spans_of_every_shape()) is SpanExportResult.FAILURE
    assert len(received.bodies) == 1
    exporter.shutdown()
    assert exporter.export([]) is SpanExportResult.FAILURE
