"""Settings that would silently weaken the service refuse to start; start-up says what is on."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError

from ml_service.config import Settings

BLANK = [" , ", ",", "   ", ",,, ,\t"]


def env(**values: str) -> dict[str, str]:
    """The test's environment without any MLOPS_ setting, plus `values`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return clean | values


@contextmanager
def service(data_dir: Path, **values: str) -> Iterator[subprocess.Popen[str]]:
    """Run `python -m ml_service` on a free port; kill it afterwards (only its log matters)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ml_service", "--port", "0", "--data-dir", str(data_dir)],
        env=env(MLOPS_LOG_JSON="false", **values),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        # A graceful stop waits for the ML libraries to finish loading; nothing here needs it.
        proc.kill()
        proc.wait(30)
        assert proc.stderr is not None
        proc.stderr.close()


def line_with(proc: subprocess.Popen[str], text: str) -> str:
    """Read the process's stderr up to the first line containing `text`."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if text in line:
            return line
        if line.rstrip().endswith(" ready"):
            break  # logged after the line we look for: it is not coming
    raise AssertionError(f"the service did not log {text!r}")


@pytest.mark.parametrize("tokens", BLANK)
def test_blank_auth_tokens_are_refused(tokens: str) -> None:
    with pytest.raises(ValidationError, match="MLOPS_AUTH_TOKENS"):
        Settings(auth_tokens=tokens)


def test_unset_and_real_tokens_are_accepted() -> None:
    assert Settings(auth_tokens="").tokens == []
    assert Settings(auth_tokens=" a , b ").tokens == ["a", "b"]


def test_the_service_refuses_to_start_with_blank_tokens(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ml_service", "--port", "0", "--data-dir", str(tmp_path)],
        env=env(MLOPS_AUTH_TOKENS=" , "),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "MLOPS_AUTH_TOKENS" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "metadata.sqlite").exists()


def test_the_start_up_line_says_auth_and_tls_are_off(tmp_path: Path) -> None:
    with service(tmp_path) as proc:
        line = line_with(proc, "listening on")
    assert "auth off" in line and "TLS off" in line


def test_the_start_up_line_says_auth_is_on_and_tls_mutual(tmp_path: Path, pki: Path) -> None:
    values = {
        "MLOPS_AUTH_TOKENS": "s3cret",
        "MLOPS_TLS_CERT_FILE": str(pki / "server.pem"),
        "MLOPS_TLS_KEY_FILE": str(pki / "server.key"),
        "MLOPS_TLS_CLIENT_CA_FILE": str(pki / "ca.pem"),
    }
    with service(tmp_path, **values) as proc:
        line = line_with(proc, "listening on")
    assert "auth on" in line and "TLS mutual" in line
    assert "s3cret" not in line


@pytest.mark.parametrize(("values", "flags", "said"), [
    ({"MLOPS_PORT": "http"}, [], "MLOPS_PORT: Input should be a valid integer"),
    ({}, ["--port", "-5"], "--port: Input should be greater than or equal to 0"),
    ({"MLOPS_MAX_UPLOAD_BYTES": "-5"}, [], "MLOPS_MAX_UPLOAD_BYTES: Input should be greater"),
    ({"MLOPS_MAX_QUEUED_JOBS": "-1"}, [], "MLOPS_MAX_QUEUED_JOBS: Input should be greater"),
    ({"MLOPS_DATABASE_URL": "mysql://db/mlops"}, [], "MLOPS_DATABASE_URL must start with"),
    ({"MLOPS_ARTIFACT_URI": "gs://models/mlops"}, [], "MLOPS_ARTIFACT_URI must be s3://"),
    ({"MLOPS_ARTIFACT_URI": "s3://"}, [], "MLOPS_ARTIFACT_URI names no bucket"),
    ({"MLOPS_ARTIFACT_URI": "s3:///"}, [], "MLOPS_ARTIFACT_URI names no bucket"),
    ({"MLOPS_LOG_LEVEL": "LOUD"}, [], "MLOPS_LOG_LEVEL: should be one of DEBUG, INFO"),
    ({"MLOPS_DATABASE_URL": "sqlite:////no/such/dir/m.sqlite"}, [],
     "MLOPS_DATABASE_URL names a SQLite file in /no/such/dir, which is not a directory"),
])  # fmt: skip
def test_a_bad_setting_is_one_line_naming_its_variable(
    tmp_path: Path, values: dict[str, str], flags: list[str], said: str
) -> None:
    # Said "port: ..." (the field, not the variable a manifest sets); an S3 URL without a
    # bucket and an unknown log level were tracebacks.
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "ml_service", "--data-dir", str(store), *flags],
        env=env(**{"MLOPS_PORT": "0", **values}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"ml_service: {said}"), done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1
    assert not store.exists()


def test_log_levels_are_taken_in_any_case() -> None:
    assert Settings(log_level=" debug ").log_level == "DEBUG"


def test_a_data_directory_that_is_a_file_is_named_as_the_setting(tmp_path: Path) -> None:
    # Was "[Errno 20] Not a directory: '.../tmp'": neither the setting nor the path given.
    taken = tmp_path / "models"
    taken.write_text("a file, not a directory\n")
    done = subprocess.run(
        [sys.executable, "-m", "ml_service", "--data-dir", str(taken)],
        env=env(MLOPS_PORT="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    said = done.stderr.strip().splitlines()[-1]
    assert said == (
        f"ml_service: the data directory {taken} (MLOPS_DATA_DIR, --data-dir) cannot be used:"
        " not a directory"
    )
    assert "Traceback" not in done.stderr
