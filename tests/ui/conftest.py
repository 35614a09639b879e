"""Fixtures of the UI tests: a scripted gateway and the handlers bound to it."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from tests.ui.fakes import FakeGateway
from ui.client import GatewayClient
from ui.handlers import Handlers
from ui.training import Training


@pytest.fixture
def gateway() -> FakeGateway:
    """A scripted gateway with one model (m-1) of two versions."""
    return FakeGateway()


@pytest.fixture
def client(gateway: FakeGateway) -> GatewayClient:
    """A gateway client talking to the scripted gateway."""
    return gateway.client()


@pytest.fixture
def handlers(client: GatewayClient) -> Handlers:
    """The Models, Predict and Delete handlers."""
    return Handlers(client, max_table_rows=50)


@pytest.fixture
def training(client: GatewayClient) -> Training:
    """The Train and Retrain handlers."""
    return Training(client, preview_rows=5)


@pytest.fixture
def penguins(data_dir_path: Path) -> Path:
    """The real penguins dataset."""
    return data_dir_path / "penguins.csv"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so fixtures can tell a failure (for screenshots)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
