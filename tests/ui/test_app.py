"""The app factory and the command line: no gateway calls at build, stable ids, settings."""

from __future__ import annotations

import pytest

import ui.__main__
from tests.ui.fakes import FakeGateway
from ui.app import build_demo
from ui.config import UISettings

STABLE_IDS = {
    "gateway-status",
    "train-kind",
    "train-file",
    "train-target",
    "train-button",
    "train-progress",
    "train-metrics",
    "models-table",
    "models-version",
    "models-importance",
    "predict-model",
    "predict-rows",
    "predict-results",
    "predict-download",
    "retrain-model",
    "retrain-compare",
    "delete-model",
    "delete-version",
    "delete-confirm",
    "delete-result",
    "jobs-table",
    "jobs-pick",
    "jobs-cancel",
    "train-error",
    "train-features",
    "train-allow-many",
    "predict-error",
    "retrain-version",
    "train-curve",
    "retrain-curve",
    "models-learning-curve",
    "models-roc",
    "models-pr",
    "models-confusion",
    "compare-model",
    "compare-first",
    "compare-second",
    "compare-left",
    "compare-right",
}


async def test_the_demo_builds_without_calling_the_gateway(gateway: FakeGateway) -> None:
    # Async on purpose: without a running loop Gradio opens one per Blocks and never closes it.
    config = build_demo(gateway.client()).get_config_file()
    assert gateway.requests == []  # the page asks when it loads, so a down gateway is fine
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert ids >= STABLE_IDS
    # The gateway is the API; the UI's own endpoints are not offered to Gradio clients.
    assert {d["api_visibility"] for d in config["dependencies"]} <= {"private", "undocumented"}


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_UI_GATEWAY_URL", "http://from-env:8000")
    monkeypatch.setenv("MLOPS_UI_PORT", "9000")
    monkeypatch.setenv("MLOPS_UI_GATEWAY_TOKEN", "s3cret")
    served: list[UISettings] = []
    monkeypatch.setattr(ui.__main__, "serve", served.append)
    ui.__main__.main(["--port", "7001", "--host", "0.0.0.0"])
    (settings,) = served
    assert (settings.host, settings.port) == ("0.0.0.0", 7001)
    assert settings.gateway_url == "http://from-env:8000"
    assert settings.gateway_token is not None
    assert settings.gateway_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
