"""What the deployment files are checked against: the real settings classes and CLIs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic_settings import BaseSettings

from ml_service.config import Settings
from rest_gateway.config import GatewaySettings
from tests.conftest import ServiceThread, service_settings
from ui.config import UISettings

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "mlops-service:0.1.0"
# The module each part runs and the settings class it reads.
SETTINGS: dict[str, type[BaseSettings]] = {
    "ml_service": Settings,
    "rest_gateway": GatewaySettings,
    "ui": UISettings,
}


def prefix(cls: type[BaseSettings]) -> str:
    """The environment prefix of a settings class, e.g. "MLOPS_GATEWAY_"."""
    return str(cls.model_config.get("env_prefix", ""))


def variables(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads."""
    return {prefix(cls) + name.upper() for name in cls.model_fields}


def owner(variable: str) -> type[BaseSettings]:
    """The settings class a variable belongs to, by its longest matching prefix."""
    classes = sorted(SETTINGS.values(), key=lambda c: len(prefix(c)), reverse=True)
    return next(c for c in classes if variable.startswith(prefix(c)))


def settings_from(module: str, environment: dict[str, str]) -> Any:
    """The settings a part would run with in exactly this environment."""
    cls = SETTINGS[module]
    unknown = {k for k in environment if k.startswith("MLOPS_")} - variables(cls)
    assert not unknown, f"{module} has no setting for {sorted(unknown)}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    with mock.patch.dict(os.environ, {**clean, **environment}, clear=True):
        return cls()


@cache
def cli_help(module: str) -> str:
    """`python -m <module> --help`, which also proves the module starts."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def check_command(argv: list[str]) -> str:
    """Check a `python -m <module> [--flag value]...` command against the real CLI."""
    assert argv[:2] == ["python", "-m"], argv
    module = argv[2]
    assert module in SETTINGS, f"not one of our parts: {module}"
    text = cli_help(module)
    for arg in argv[3:]:
        if arg.startswith("--"):
            assert arg.split("=")[0] in text, f"{module} has no option {arg}"
    return module


def load_all(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in a file."""
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """compose.yaml as a dict."""
    (document,) = load_all(ROOT / "compose.yaml")
    return document


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    """One real gRPC service for the checks that only read its health."""
    service = ServiceThread(service_settings(tmp_path_factory.mktemp("store"))).start()
    yield service
    service.stop()
