"""`python -m ml_service.healthcheck` against real services: 0 only while SERVING."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ml_service import healthcheck
from ml_service.grpc.server import READINESS
from tests.conftest import ServiceThread
from tests.deploy.conftest import ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the health check the way a container healthcheck does."""
    return subprocess.run(
        [sys.executable, "-m", "ml_service.healthcheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_defaults_ask_the_services_readiness_name() -> None:
    assert healthcheck.READINESS == READINESS


def test_serving_names_pass(shared_service: ServiceThread) -> None:
    for name in ("mlops.v1.readiness", "mlops.v1.liveness", ""):
        result = run("--target", shared_service.target, "--service", name)
        assert result.returncode == 0, result.stderr
    assert run("--target", shared_service.target).returncode == 0


def test_unknown_name_fails(shared_service: ServiceThread) -> None:
    result = run("--target", shared_service.target, "--service", "no.such.Service")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_nothing_listening_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = run("--target", f"127.0.0.1:{port}", "--timeout", "5")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
    assert time.monotonic() - started < 5 + 5  # the timeout plus an interpreter start


def test_a_stopping_service_is_not_ready(grpc_service: ServiceThread) -> None:
    # SIGTERM turns readiness off before the graceful stop: the check must say so.
    assert grpc_service.server is not None
    grpc_service.call(grpc_service.server.health.enter_graceful_shutdown())
    result = run("--target", grpc_service.target)
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stderr


def test_bad_usage_is_refused() -> None:
    assert run("--timeout", "0").returncode == 2
    assert run("--tls-cert-file", "c.pem").returncode == 2


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA and a server certificate for the name ml-service."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=DNS:ml-service\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=ml-service",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
            cwd=d)  # fmt: skip
    return d


def test_tls_with_the_ca_and_the_certificates_name(start_service: Any, pki: Path) -> None:
    service = start_service(tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key")
    ca = str(pki / "ca.pem")
    result = run("--target", service.target, "--tls-ca-file", ca, "--tls-server-name", "ml-service")
    assert result.returncode == 0, result.stderr
    assert run("--target", service.target).returncode == 1  # plaintext to a TLS port
