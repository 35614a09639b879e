"""Probes, and the gRPC service going away and coming back while the gateway keeps running."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi.testclient import TestClient

from rest_gateway.app import create_app
from tests.rest_gateway.conftest import gateway_settings
from tests.rest_gateway.test_jobs import sse_events

SLOW = json.dumps({"iterations": 10000, "learning_rate": 0.01})


def wait_for_status(http: TestClient, path: str, status: int, seconds: float = 15) -> Any:
    """Poll a path until it answers `status`; return the last response."""
    deadline = time.monotonic() + seconds
    while True:
        response = http.get(path)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_grpc_down_is_503_and_the_gateway_recovers_on_its_own(start_service: Any) -> None:
    service = start_service()
    port = service.server.port
    with TestClient(create_app(gateway_settings(service.target))) as http:
        assert http.get("/v1/kinds").status_code == 200
        assert http.get("/readyz").json() == {"status": "ready"}

        service.call(service.server.stop(0))
        down = http.get("/v1/kinds")

        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert down.json()["detail"] == "The model service is unavailable; try again in a moment."
        assert str(port) not in down.text  # the transport's address stays in the log
        assert http.get("/readyz").status_code == 503
        assert http.get("/healthz").json() == {"status": "ok"}

        start_service(port=port)

        assert wait_for_status(http, "/v1/kinds", 200).status_code == 200
        assert http.get("/readyz").status_code == 200


def test_readyz_is_503_while_the_service_is_not_ready(start_service: Any) -> None:
    service = start_service()
    with TestClient(create_app(gateway_settings(service.target))) as http:
        assert wait_for_status(http, "/readyz", 200).status_code == 200
        service.call(service.server.health.enter_graceful_shutdown())

        not_ready = http.get("/readyz")

    assert not_ready.status_code == 503
    assert "NOT_SERVING" in not_ready.json()["detail"]


def test_an_event_stream_ends_with_an_error_event_when_the_service_goes(
    start_service: Any, data_dir_path: Any
) -> None:
    service = start_service()
    csv = (data_dir_path / "penguins.csv").read_bytes()
    with TestClient(create_app(gateway_settings(service.target))) as http:
        job = http.post(
            "/v1/jobs",
            files={"file": ("penguins.csv", csv, "text/csv")},
            data={"kind": "catboost", "target_column": "species", "hyperparameters": SLOW},
        ).json()
        stopper = threading.Timer(1.0, lambda: service.call(service.server.stop(0)))
        stopper.start()
        events = sse_events(http.get(f"/v1/jobs/{job['job_id']}/events").text)
        stopper.join()

    name, data = events[-1]
    assert name == "error"
    assert data["status"] == 503
    assert data["detail"] == "The model service is unavailable; try again in a moment."
