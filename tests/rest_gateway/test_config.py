"""A blank gateway token refuses to start; start-up says whether token and TLS are on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from rest_gateway.config import GatewaySettings


def env(**values: str) -> dict[str, str]:
    """The test's environment without any MLOPS_ setting, plus `values`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")} | values


@pytest.mark.parametrize("token", [" , ", " ", ",,"])
def test_a_blank_gateway_token_is_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="MLOPS_GATEWAY_GRPC_TOKEN"):
        GatewaySettings(grpc_token=token)


def test_the_gateway_refuses_to_start_with_a_blank_token() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rest_gateway", "--port", "0"],
        env=env(MLOPS_GATEWAY_GRPC_TOKEN=" , "),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "MLOPS_GATEWAY_GRPC_TOKEN" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({}, "token to the service off, TLS to the service off"),
        (
            {"MLOPS_GATEWAY_GRPC_TOKEN": "s3cret", "MLOPS_GATEWAY_GRPC_TLS": "true"},
            "token to the service on, TLS to the service on",
        ),
    ],
)
def test_the_start_up_line_says_whether_token_and_tls_are_on(
    values: dict[str, str], said: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rest_gateway", "--port", "0"],
        env=env(**values),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        # Uvicorn's own start-up lines come after ours: stop there if ours is missing.
        line = next(
            (line for line in proc.stderr if "serving on" in line or "Uvicorn running" in line),
            "",
        )
    finally:
        proc.terminate()
        proc.wait(30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert said in line and "s3cret" not in line


@pytest.mark.parametrize(("values", "flags", "said"), [
    ({"MLOPS_GATEWAY_PORT": "http"}, [], "MLOPS_GATEWAY_PORT: Input should be a valid integer"),
    ({}, ["--port", "70000"], "--port: Input should be less than or equal to 65535"),
    ({"MLOPS_GATEWAY_MAX_BODY_BYTES": "-1"}, [], "MLOPS_GATEWAY_MAX_BODY_BYTES: Input should"),
    ({"MLOPS_GATEWAY_LOG_LEVEL": "loud"}, [], "MLOPS_GATEWAY_LOG_LEVEL: should be one of DEBUG"),
])  # fmt: skip
def test_a_bad_setting_is_one_line_naming_its_variable(
    values: dict[str, str], flags: list[str], said: str
) -> None:
    # Said "port: ..." (the field, not the variable a manifest sets); an unknown log level
    # was a traceback from logging.
    done = subprocess.run(
        [sys.executable, "-m", "rest_gateway", *flags],
        env=env(**values),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"rest_gateway: {said}"), done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1
