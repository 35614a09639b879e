"""The service's OTLP span export: configured by the standard variables, named after the service."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ml_service import telemetry


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it receives."""

    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
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
    tracer = telemetry.Telemetry(tracer_provider=provider).tracer
    rpc = tracer.start_span("/mlops.v1.PredictionService/Predict", kind=SpanKind.SERVER)
    with trace.use_span(rpc, end_on_exit=True), tracer.start_as_current_span("core.predict"):
        tracer.start_span("model.predict", attributes={"mlops.rows": 1}).end()
    provider.shutdown()
    sent = [ExportTraceServiceRequest.FromString(body) for body in received.bodies]
    assert sent == [encode_spans(kept.get_finished_spans())]
    attributes = sent[0].resource_spans[0].resource.attributes
    assert {kv.key: kv.value.string_value for kv in attributes}["service.name"] == "ml_service"
    scope = sent[0].resource_spans[0].scope_spans[0]
    assert scope.scope.name == "ml_service"
    spans = {span.name: span for span in scope.spans}
    assert list(spans) == ["model.predict", "core.predict", "/mlops.v1.PredictionService/Predict"]
    root = spans["/mlops.v1.PredictionService/Predict"]
    assert root.parent_span_id == b""
    assert spans["core.predict"].parent_span_id == root.span_id
    assert spans["model.predict"].parent_span_id == spans["core.predict"].span_id
    assert {span.trace_id for span in spans.values()} == {root.trace_id}
    assert [(kv.key, kv.value.int_value) for kv in spans["model.predict"].attributes] == [
        ("mlops.rows", 1)
    ]
