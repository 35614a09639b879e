"""Metrics, traces and request ids across the gateway and the service, as an operator sees them.

One service and one gateway, each with its own registry and its own in-memory span exporter
(as two processes would have), serve the whole module; a model is trained once through the
gateway and predicted with JSON rows (Predict) and CSV (StreamPredict).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from ml_service import logs
from ml_service import telemetry as service_telemetry
from ml_service.metrics import ServiceMetrics
from ml_service.telemetry import Telemetry
from rest_gateway import examples, request_ids
from rest_gateway import telemetry as gateway_telemetry
from rest_gateway.app import create_app
from rest_gateway.telemetry import GatewayMetrics, GatewayTelemetry
from tests.conftest import ServiceThread, service_settings
from tests.rest_gateway.conftest import gateway_settings

DASHBOARDS = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
PROMTOOL = shutil.which("promtool")


def free_port() -> int:
    """A port nothing listens on now (the metrics port is configured, not picked by bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_memory() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider that keeps finished spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class Lines(logging.Handler):
    """Collect the formatted lines of one package's logger, as its process would print them."""

    def __init__(self, formatter: logging.Formatter, stamp: logging.Filter) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(formatter)
        self.addFilter(stamp)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def penguins_csv(data_dir_path: Path) -> bytes:
    return (data_dir_path / "penguins.csv").read_bytes()


@pytest.fixture(scope="module")
def service_spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    return in_memory()


@pytest.fixture(scope="module")
def gateway_spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    return in_memory()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    service_spans: tuple[TracerProvider, InMemorySpanExporter],
) -> Iterator[ServiceThread]:
    telemetry = Telemetry(ServiceMetrics(service_telemetry.process_registry()), service_spans[0])
    settings = service_settings(tmp_path_factory.mktemp("store"), metrics_port=free_port())
    svc = ServiceThread(settings, telemetry).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def client(
    service: ServiceThread, gateway_spans: tuple[TracerProvider, InMemorySpanExporter]
) -> Iterator[TestClient]:
    telemetry = GatewayTelemetry(
        GatewayMetrics(gateway_telemetry.process_registry()), gateway_spans[0]
    )
    app = create_app(gateway_settings(service.target), observability=telemetry)
    with TestClient(app) as http:
        yield http


@pytest.fixture(scope="module")
def model_id(client: TestClient, penguins_csv: bytes) -> str:
    """Train through the gateway, then predict: 2 JSON rows, then the whole CSV streamed."""
    trained = client.post(
        "/v1/jobs?wait=true",
        files={"file": ("penguins.csv", penguins_csv, "text/csv")},
        data={
            "kind": "catboost",
            "target_column": "species",
            "hyperparameters": '{"iterations": 5}',
        },
    )
    assert trained.status_code == 201, trained.text
    model: str = trained.json()["model_id"]
    for _ in range(3):
        assert client.post(f"/v1/models/{model}/predict", json=examples.PREDICT_REQUEST).is_success
    files = {"file": ("penguins.csv", penguins_csv, "text/csv")}
    assert client.post(f"/v1/models/{model}/predict", files=files).is_success
    return model


def scrape_service(service: ServiceThread) -> str:
    assert service.server is not None and service.server.metrics is not None
    response = httpx.get(f"http://127.0.0.1:{service.server.metrics.port}/metrics")
    assert response.status_code == 200
    return response.text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def promtool_check(text: str) -> None:
    assert PROMTOOL is not None, "promtool is missing: bin/test installs Debian's prometheus"
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_service_metrics_show_the_training_and_the_predictions(
    service: ServiceThread, model_id: str, penguins_csv: bytes
) -> None:
    text = scrape_service(service)
    promtool_check(text)

    rows = penguins_csv.decode().strip().count("\n") + 3 * len(examples.PREDICT_REQUEST["rows"])
    assert value(text, "mlops_predicted_rows_total", kind="catboost") == rows
    assert value(text, "mlops_rpc_requests_total", method="Predict", code="OK") == 3
    assert value(text, "mlops_rpc_requests_total", method="StreamPredict", code="OK") == 1
    assert value(text, "mlops_rpc_duration_seconds_count", method="Predict", code="OK") == 3
    ended = {"kind": "catboost", "state": "succeeded"}
    assert value(text, "mlops_training_jobs_ended_total", **ended) == 1
    assert value(text, "mlops_training_job_duration_seconds_count", **ended) == 1
    assert value(text, "mlops_training_job_duration_seconds_sum", **ended) > 0
    assert value(text, "mlops_training_jobs_queued") == value(text, "mlops_training_jobs_running")
    assert value(text, "mlops_training_jobs_running") == 0
    assert value(text, "mlops_training_upload_bytes_count") == 1
    assert value(text, "mlops_training_upload_bytes_sum") > len(penguins_csv) / 2
    # One load; every later predict found the model in memory.
    assert value(text, "mlops_model_load_duration_seconds_count", kind="catboost") == 1
    assert value(text, "mlops_model_cache_misses_total") == 1
    assert value(text, "mlops_model_cache_hits_total") == 3
    assert value(text, "mlops_model_cache_models") == 1
    committed = value(
        text, "mlops_store_operation_duration_seconds_count", operation="commit_version"
    )
    assert committed == 1
    assert model_id not in text  # ids never become label values


def test_a_failed_call_is_counted_by_its_code(service: ServiceThread, client: TestClient) -> None:
    before = value(
        scrape_service(service), "mlops_rpc_requests_total", method="GetModel", code="NOT_FOUND"
    )
    assert client.get("/v1/models/no-such-model").status_code == 404
    after = value(
        scrape_service(service), "mlops_rpc_requests_total", method="GetModel", code="NOT_FOUND"
    )
    assert after == before + 1


def test_the_gateway_metrics_count_requests_by_route_template(
    client: TestClient, model_id: str
) -> None:
    client.get("/metrics")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    promtool_check(text)

    route = "/v1/models/{model_id}/predict"
    labels = {"method": "POST", "route": route, "status": "200"}
    assert value(text, "mlops_gateway_requests_total", **labels) == 4
    assert value(text, "mlops_gateway_request_duration_seconds_count", **labels) == 4
    assert (
        value(text, "mlops_gateway_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert 'route="/metrics"' not in text
    assert model_id not in text


def test_a_method_nobody_routes_is_counted_as_other_not_by_its_name(client: TestClient) -> None:
    for method in ("PROPFIND", "BREW", "X-SCAN-1a2b3c"):
        client.request(method, "/healthz")
        client.request(method, "/no/such/path")
    text = client.get("/metrics").text
    promtool_check(text)

    assert "PROPFIND" not in text and "BREW" not in text and "X-SCAN" not in text
    assert (
        value(text, "mlops_gateway_requests_total", method="other", route="/healthz", status="405")
        >= 3
    )


def test_requests_the_router_never_names_are_counted_by_their_route_template(
    client: TestClient,
) -> None:
    """HEAD, a /v1 path's trailing slash and a body refused before routing keep the route."""

    def count(method: str, route: str, status: str) -> float:
        text = client.get("/metrics").text
        labels = {"method": method, "route": route, "status": status}
        return value(text, "mlops_gateway_requests_total", **labels)

    route = "/v1/models/{model_id}/predict"
    before = (count("HEAD", "/healthz", "200"), count("GET", "/v1/kinds", "200"))
    refused_before = count("POST", route, "400")
    assert client.head("/healthz").status_code == 200
    assert client.get("/v1/kinds/").status_code == 200
    not_gzip = {"content-type": "application/json", "content-encoding": "gzip"}
    assert client.post("/v1/models/m/predict", content=b"{}", headers=not_gzip).status_code == 400

    after = (count("HEAD", "/healthz", "200"), count("GET", "/v1/kinds", "200"))
    assert after == (before[0] + 1, before[1] + 1)
    assert count("POST", route, "400") == refused_before + 1


def test_every_metric_the_dashboards_chart_exists(
    service: ServiceThread, client: TestClient, model_id: str
) -> None:
    exposed = {
        name
        for text in (scrape_service(service), client.get("/metrics").text)
        for name, _ in samples(text)
    }
    dashboards = sorted(DASHBOARDS.glob("*.json"))
    assert dashboards, f"no dashboard in {DASHBOARDS}"
    for path in dashboards:
        exprs = [
            target["expr"]
            for panel in json.loads(path.read_text())["panels"]
            for target in panel.get("targets", [])
        ]
        assert exprs, f"{path.name} charts nothing"
        charted = {m for expr in exprs for m in re.findall(r"\b(?:mlops|process)_[a-z_]+", expr)}
        missing = charted - exposed
        assert not missing, f"{path.name} charts metrics nobody exposes: {sorted(missing)}"


def test_no_dashboard_query_depends_on_the_scrape_jobs_names() -> None:
    """Compose names its jobs ml-service and rest-gateway; a kubernetes-pods job names neither."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                assert not re.search(r"\bjob\s*=", target["expr"]), (panel["title"], target["expr"])


def spans_of(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]


def service_trace(
    exporter: InMemorySpanExporter, trace_id: str, *names: str
) -> dict[str, ReadableSpan]:
    """The service's spans of a trace by name, once all of `names` are there.

    The service hands a call's spans over in its event loop's next turn, after the answer
    is sent, so a caller may read them a moment before they arrive.
    """
    deadline = time.monotonic() + 10
    while True:
        spans = {s.name: s for s in spans_of(exporter, trace_id)}
        if set(names) <= set(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.01)


def test_a_rest_predict_is_one_trace_from_the_gateway_to_the_model(
    client: TestClient,
    model_id: str,
    service_spans: tuple[TracerProvider, InMemorySpanExporter],
    gateway_spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    response = client.post(f"/v1/models/{model_id}/predict", json=examples.PREDICT_REQUEST)
    assert response.status_code == 200
    trace_id = response.headers["x-request-id"]

    (route,) = spans_of(gateway_spans[1], trace_id)
    assert route.name == "POST /v1/models/{model_id}/predict"
    service = service_trace(
        service_spans[1],
        trace_id,
        "/mlops.v1.PredictionService/Predict",
        "core.predict",
        "model.predict",
    )
    rpc = service["/mlops.v1.PredictionService/Predict"]
    assert rpc.parent is not None and rpc.parent.span_id == route.context.span_id
    assert service["core.predict"].parent == rpc.context
    assert service["model.predict"].parent == service["core.predict"].context


def test_a_streamed_predict_is_one_trace_from_the_gateway_to_the_use_case(
    client: TestClient,
    model_id: str,
    penguins_csv: bytes,
    service_spans: tuple[TracerProvider, InMemorySpanExporter],
    gateway_spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    files = {"file": ("penguins.csv", penguins_csv, "text/csv")}
    response = client.post(f"/v1/models/{model_id}/predict", files=files)
    assert response.status_code == 200
    trace_id = response.headers["x-request-id"]

    rpc_name = "/mlops.v1.PredictionService/StreamPredict"
    service = service_trace(service_spans[1], trace_id, rpc_name, "core.stream_predict")
    rpc = service[rpc_name]
    assert service["core.stream_predict"].parent == rpc.context
    assert rpc.parent is not None
    assert rpc.parent.span_id in {s.context.span_id for s in spans_of(gateway_spans[1], trace_id)}


def test_a_callers_traceparent_is_honoured(
    client: TestClient,
    model_id: str,
    service_spans: tuple[TracerProvider, InMemorySpanExporter],
    gateway_spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    response = client.get(f"/v1/models/{model_id}", headers=headers)

    assert response.headers["x-request-id"] == trace_id
    (route,) = spans_of(gateway_spans[1], trace_id)
    assert route.parent is not None and f"{route.parent.span_id:016x}" == parent
    assert "core.get_model" in service_trace(service_spans[1], trace_id, "core.get_model")


def test_a_trace_the_caller_did_not_sample_records_no_span_but_still_names_the_request(
    client: TestClient,
    model_id: str,
    service_spans: tuple[TracerProvider, InMemorySpanExporter],
    gateway_spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-00"}  # flags 00: not sampled
    response = client.post(
        f"/v1/models/{model_id}/predict", json=examples.PREDICT_REQUEST, headers=headers
    )

    assert response.status_code == 200
    assert response.headers["x-request-id"] == trace_id
    assert spans_of(gateway_spans[1], trace_id) == []
    assert spans_of(service_spans[1], trace_id) == []


def test_a_training_job_reports_its_stages_in_the_trace_that_started_it(
    model_id: str, service_spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    (job,) = [s for s in service_spans[1].get_finished_spans() if s.name == "training.job"]
    call_name = "/mlops.v1.TrainingService/CreateTrainingJob"
    call = service_trace(service_spans[1], f"{job.context.trace_id:032x}", call_name)[call_name]

    assert job.context.trace_id == call.context.trace_id
    stages = [event.name for event in job.events]
    assert stages[0] == "preparing" and "saving" in stages
    assert job.attributes is not None and job.attributes["mlops.job.state"] == "succeeded"


@pytest.fixture
def log_lines() -> Iterator[tuple[Lines, Lines]]:
    """The service's JSON lines and the gateway's text lines, as each process prints them."""
    service = Lines(logs.JsonFormatter(), logs.RequestIdFilter())
    gateway = Lines(
        logging.Formatter("%(message)s request_id=%(request_id)s"), request_ids.RequestIdFilter()
    )
    pairs = (
        (logging.getLogger("ml_service"), service),
        (logging.getLogger("rest_gateway"), gateway),
    )
    for logger, handler in pairs:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield service, gateway
    for logger, handler in pairs:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def test_a_problem_names_the_request_id_found_in_both_processes_logs(
    client: TestClient, log_lines: tuple[Lines, Lines]
) -> None:
    response = client.post("/v1/models/no-such-model/predict", json=examples.PREDICT_REQUEST)

    assert response.status_code == 404
    request_id = response.json()["request_id"]
    assert request_id == response.headers["x-request-id"]
    service, gateway = log_lines
    rpc = [json.loads(line) for line in service.lines]
    assert any(
        line.get("request_id") == request_id and line.get("code") == "NOT_FOUND" for line in rpc
    ), service.lines
    assert any(
        "404 NOT_FOUND" in line and f"request_id={request_id}" in line for line in gateway.lines
    )


def test_an_answered_calls_line_is_written_after_it_with_its_request_id(
    client: TestClient, model_id: str, log_lines: tuple[Lines, Lines]
) -> None:
    # The line of a call that succeeded is written once its answer is on its way: it must
    # still come, and name the request it is about.
    response = client.get(f"/v1/models/{model_id}")

    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in log_lines[0].lines]
        found = [line for line in lines if line.get("request_id") == request_id]
        if any(line.get("message") == "rpc" for line in found):
            break
        time.sleep(0.01)
    (rpc,) = [line for line in found if line.get("message") == "rpc"]
    assert rpc["code"] == "OK" and rpc["method"] == "GetModel" and rpc["duration_ms"] > 0


def test_a_callers_request_id_is_kept_when_not_tracing(
    tmp_path: Path, log_lines: tuple[Lines, Lines]
) -> None:
    svc = ServiceThread(service_settings(tmp_path)).start()
    try:
        with TestClient(create_app(gateway_settings(svc.target))) as http:
            response = http.get("/v1/models/missing", headers={"x-request-id": "ticket-42"})
            fresh = http.get("/v1/models/missing", headers={"x-request-id": "no spaces allowed"})
    finally:
        svc.stop()

    assert response.json()["request_id"] == "ticket-42"
    assert fresh.json()["request_id"] not in ("", "no spaces allowed")
    service_ids = {json.loads(line).get("request_id") for line in log_lines[0].lines}
    assert {"ticket-42", fresh.json()["request_id"]} <= service_ids


def test_json_lines_keep_extras_but_not_other_libraries_underscored_attributes() -> None:
    record = logging.makeLogRecord({"msg": "ready", "job_id": "j-1", "_ray_timestamp_ns": 1})
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "ready" and line["job_id"] == "j-1"
    assert "_ray_timestamp_ns" not in line


@pytest.mark.parametrize(
    "provider_from_env", [service_telemetry.provider_from_env, gateway_telemetry.provider_from_env]
)
def test_exported_spans_name_their_process_unless_otel_service_name_does(
    provider_from_env: Callable[[str], TracerProvider | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The endpoint is never contacted: no span is started.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    names = []
    for configured in (None, "scorer-eu"):
        if configured:
            monkeypatch.setenv("OTEL_SERVICE_NAME", configured)
        provider = provider_from_env("our-name")
        assert provider is not None
        names.append(provider.resource.attributes["service.name"])
        provider.shutdown()
    assert names == ["our-name", "scorer-eu"]


@pytest.mark.parametrize(
    ("method", "use_case"),
    [("Predict", "core.predict"), ("StreamPredict", "core.stream_predict")],
)
def test_a_failed_call_marks_its_spans_with_the_users_error(
    client: TestClient,
    penguins_csv: bytes,
    service_spans: tuple[TracerProvider, InMemorySpanExporter],
    method: str,
    use_case: str,
) -> None:
    url = "/v1/models/no-such-model/predict"
    if method == "StreamPredict":  # the gateway streams a CSV file
        response = client.post(url, files={"file": ("penguins.csv", penguins_csv, "text/csv")})
    else:
        response = client.post(url, json=examples.PREDICT_REQUEST)
    assert response.status_code == 404
    trace_id = response.headers["x-request-id"]

    name = f"/mlops.v1.PredictionService/{method}"
    spans = service_trace(service_spans[1], trace_id, name, use_case)
    for span in (spans[name], spans[use_case]):
        assert span.status.status_code is StatusCode.ERROR, span.name
        assert span.status.description and "no-such-model" in span.status.description, span.name
    assert [event.name for event in spans[name].events] == ["exception"]
