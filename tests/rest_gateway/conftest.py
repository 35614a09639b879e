"""The gateway in front of a real in-process gRPC service, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rest_gateway.app import create_app
from rest_gateway.config import GatewaySettings
from tests.conftest import ServiceThread, service_settings

FAST = {"iterations": 20}


def gateway_settings(target: str, **overrides: Any) -> GatewaySettings:
    """Settings for a test gateway in front of `target`."""
    values: dict[str, Any] = {"grpc_target": target, "rpc_timeout_seconds": 20, **overrides}
    return GatewaySettings(**values)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    """One gRPC service for the module's tests (starting one costs seconds)."""
    svc = ServiceThread(service_settings(tmp_path_factory.mktemp("store"))).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def client(service: ServiceThread) -> Iterator[TestClient]:
    """An HTTP client of a gateway app whose lifespan (and channel) spans the module."""
    with TestClient(create_app(gateway_settings(service.target))) as http:
        yield http


@pytest.fixture(scope="module")
def penguins_csv(data_dir_path: Path) -> bytes:
    """The whole penguins dataset as CSV bytes."""
    return (data_dir_path / "penguins.csv").read_bytes()


@pytest.fixture(scope="module")
def penguins_model(client: TestClient, penguins_csv: bytes) -> dict[str, Any]:
    """A CatBoost model version trained on penguins through the gateway."""
    response = client.post(
        "/v1/jobs?wait=true",
        files={"file": ("penguins.csv", penguins_csv, "text/csv")},
        data={
            "kind": "catboost",
            "target_column": "species",
            "hyperparameters": '{"iterations": 20}',
        },
    )
    assert response.status_code == 201, response.text
    version: dict[str, Any] = response.json()
    return version
