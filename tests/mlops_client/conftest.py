"""One real service for the client tests, with a model of each kind trained on penguins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_client import Client, ModelVersion
from tests.conftest import DATA_DIR, ServiceThread, service_settings

PENGUINS = DATA_DIR / "penguins.csv"
FAST = {"catboost": {"iterations": 20}, "logistic_regression": {"max_iter": 200}}


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    """A real gRPC service on a free port, shared by the client and CLI tests."""
    running = ServiceThread(service_settings(tmp_path_factory.mktemp("store"))).start()
    yield running
    running.stop()


@pytest.fixture(scope="package")
def client(service: ServiceThread) -> Iterator[Client]:
    """A client of the shared service."""
    with Client(service.target) as c:
        yield c


@pytest.fixture(scope="package")
def trained(client: Client) -> dict[str, ModelVersion]:
    """One small model of each kind, trained from the penguins CSV path."""
    return {kind: client.train(PENGUINS, kind, "species", params) for kind, params in FAST.items()}


@pytest.fixture
def penguins_csv() -> Path:
    """Path of the penguins dataset."""
    return PENGUINS
