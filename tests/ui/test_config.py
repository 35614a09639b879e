"""A bad UI setting stops the UI with one line naming its variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("values", "flags", "said"), [
    ({"MLOPS_UI_PORT": "http"}, [], "MLOPS_UI_PORT: Input should be a valid integer"),
    ({}, ["--port", "0"], "--port: Input should be greater than or equal to 1"),
    ({"MLOPS_UI_PREVIEW_ROWS": "-3"}, [], "MLOPS_UI_PREVIEW_ROWS: Input should be greater"),
    ({"MLOPS_UI_TIMEOUT_SECONDS": "soon"}, [], "MLOPS_UI_TIMEOUT_SECONDS: Input should be"),
    ({"MLOPS_UI_LOG_LEVEL": "LOUD"}, [], "MLOPS_UI_LOG_LEVEL: should be one of DEBUG, INFO"),
    ({"MLOPS_UI_GATEWAY_URL": "gateway:8000"}, [], "MLOPS_UI_GATEWAY_URL: must be the gateway's"),
    ({"MLOPS_UI_GATEWAY_URL": "http://"}, [], "MLOPS_UI_GATEWAY_URL: must be the gateway's URL"),
])  # fmt: skip
def test_a_bad_setting_is_one_line_naming_its_variable(
    values: dict[str, str], flags: list[str], said: str
) -> None:
    # Was pydantic's traceback, with the value given repeated (a token, for some variables).
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    done = subprocess.run(
        [sys.executable, "-m", "ui", *flags],
        env=clean | values,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"ui: {said}"), done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1
