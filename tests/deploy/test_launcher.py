"""bin/launch.py's plan, read without starting anything: ports, variables and commands."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest

from tests.deploy.conftest import ROOT, SETTINGS, check_command, cli_help, prefix, settings_from


@pytest.fixture(scope="module")
def launch() -> Iterator[ModuleType]:
    """bin/launch.py as a module (it is a script, not part of a package)."""
    name = "bin_launch"
    spec = importlib.util.spec_from_file_location(name, ROOT / "bin" / "launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def plan(launch: ModuleType, **env: str) -> tuple[list[Any], Path]:
    """The launcher's plan under exactly these MLOPS_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        result: tuple[list[Any], Path] = launch.plan()
    return result


def test_defaults_are_the_parts_own_defaults(launch: ModuleType) -> None:
    parts, data_dir = plan(launch)
    assert data_dir == ROOT / "data"
    for part in parts:
        defaults = settings_from(part.module, {})
        assert part.port == defaults.port
        assert part.port_variable == prefix(SETTINGS[part.module]) + "PORT"


def test_commands_are_real_and_wired_on_loopback(launch: ModuleType) -> None:
    parts, _ = plan(launch, MLOPS_PORT="1234", MLOPS_GATEWAY_PORT="2345", MLOPS_UI_PORT="3456")
    commands = {p.module: p.args for p in parts}
    for module, args in commands.items():
        check_command(["python", "-m", module, *args])
        assert args[args.index("--host") + 1] == "127.0.0.1"
    assert "127.0.0.1:1234" in commands["rest_gateway"]
    assert "http://127.0.0.1:2345" in commands["ui"]
    assert [p.port for p in parts] == [1234, 2345, 3456]


def test_a_relative_data_dir_is_the_callers(launch: ModuleType, tmp_path: Path) -> None:
    with mock.patch.object(os, "getcwd", return_value=str(tmp_path)):
        _, data_dir = plan(launch, MLOPS_DATA_DIR="store")
    assert data_dir == tmp_path / "store"


@pytest.mark.parametrize(("env", "message"), [
    ({"MLOPS_PORT": "http"}, "MLOPS_PORT='http' is not a whole number"),
    ({"MLOPS_UI_PORT": "70000"}, "MLOPS_UI_PORT=70000 is outside 1..65535"),
    ({"MLOPS_TLS_CERT_FILE": "c.pem"}, "unset MLOPS_TLS_CERT_FILE"),
])  # fmt: skip
def test_bad_variables_are_named(launch: ModuleType, env: dict[str, str], message: str) -> None:
    with pytest.raises(launch.ConfigError, match=message):
        plan(launch, **env)


def test_a_shared_port_names_both_variables(launch: ModuleType) -> None:
    parts, _ = plan(launch, MLOPS_PORT="50999", MLOPS_UI_PORT="50999")
    with pytest.raises(launch.ConfigError, match="set MLOPS_UI_PORT or MLOPS_PORT"):
        launch.check_ports(parts)


def test_a_taken_port_names_its_variable(launch: ModuleType) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        parts, _ = plan(launch, MLOPS_PORT=str(port))
        with pytest.raises(launch.ConfigError, match=f"port {port} for the gRPC service"):
            launch.check_ports(parts)


def test_the_port_a_taken_one_suggests_is_free_and_no_other_parts(launch: ModuleType) -> None:
    # Was always the port + 1: with MLOPS_GATEWAY_PORT there, following the advice made
    # two parts share a port (or named a port just as taken).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if launch.port_in_use(port + 1) or launch.port_in_use(port + 2):
            pytest.skip("the ports after the one the system gave are taken")
        parts, _ = plan(launch, MLOPS_PORT=str(port), MLOPS_GATEWAY_PORT=str(port + 1))
        with pytest.raises(launch.ConfigError) as refused:
            launch.check_ports(parts)
    assert f"e.g. MLOPS_PORT={port + 2} bin/start" in str(refused.value)


@pytest.mark.parametrize("module", sorted(SETTINGS))
def test_every_flag_of_a_part_names_its_variable(module: str) -> None:
    # `python -m ml_service --help` said only "worker processes" for
    # --max-concurrent-trainings, so its variable was found only in the README.
    text = " ".join(cli_help(module).split())
    flags = [f for f in text.split() if f.startswith("--") and f not in ("--help",)]
    variables = prefix(SETTINGS[module])
    for flag in dict.fromkeys(f.split("=")[0].rstrip(",") for f in flags):
        variable = variables + flag[2:].replace("-", "_").upper()
        assert variable in text, f"{module} {flag}: its help does not name {variable}"


def test_runs_with_the_projects_python() -> None:
    # bin/start execs the venv's Python, so the parts run where the packages are installed.
    text = (ROOT / "bin" / "start").read_text()
    assert 'exec "$root/.venv/bin/python" "$root/bin/launch.py"' in text


@pytest.mark.parametrize(("value", "message"), [
    ("soon", "MLOPS_START_TIMEOUT_SECONDS='soon' is not a number"),
    ("0", "MLOPS_START_TIMEOUT_SECONDS=0 is less than 1"),
    ("nan", "is less than 1"),
])  # fmt: skip
def test_bad_timeouts_are_named(launch: ModuleType, value: str, message: str) -> None:
    with (
        mock.patch.dict(os.environ, {"MLOPS_START_TIMEOUT_SECONDS": value}),
        pytest.raises(launch.ConfigError, match=message),
    ):
        launch.env_seconds("MLOPS_START_TIMEOUT_SECONDS", 120.0, minimum=1.0)
