"""Shared fixtures: the real datasets and a real gRPC service on a free loopback port."""

from __future__ import annotations

import asyncio
import faulthandler
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest

from ml_service.config import Settings
from ml_service.core import ModelServiceCore
from ml_service.grpc.server import Server, start_server
from ml_service.telemetry import Telemetry

pytest_plugins = ["tests.backends", "tests.ray_cluster"]

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# SIGKILL cycles of the shared-mode crash test in CI: each waits for a training, so about
# ten seconds on an idle 2-core machine (43 s at load average 12); `--shared-crash-seeds` for more.
SHARED_CRASH_SEEDS = 5


@pytest.fixture(scope="session")
def data_dir_path() -> Path:
    """The directory of the real datasets (adult.csv, penguins.csv, ...)."""
    assert (DATA_DIR / "penguins.csv").exists(), f"datasets not found in {DATA_DIR}"
    return DATA_DIR


class ServiceThread:
    """A real gRPC service running on its own event loop in a background thread."""

    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.loop = asyncio.new_event_loop()
        self.server: Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def target(self) -> str:
        """Address for grpc channels, e.g. "127.0.0.1:40123"."""
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    def call(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the service's loop and wait for its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> ServiceThread:
        """Start the loop and the server."""
        self._thread.start()
        # grpc.aio objects belong to the loop they are made on, so build the server there.
        core = ModelServiceCore(self.settings, self.telemetry)
        self.server = self.call(start_server(self.settings, core))
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Stop the server and the loop; stopping twice is harmless."""
        if not self._thread.is_alive():
            return
        if self.server is not None:
            try:
                self.call(self.server.stop(grace))
            except TimeoutError:
                # A stop that hangs is a bug to find: say where every task and thread waits.
                for task in asyncio.all_tasks(self.loop):
                    task.print_stack(file=sys.stderr)
                faulthandler.dump_traceback(all_threads=True)
                raise
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def service_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test service: loopback, a free port, quiet logs."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": data_dir,
        "max_concurrent_trainings": 2,
        "log_json": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Any]:
    """Start services on demand (e.g. to restart on the same data dir); all stop at the end."""
    started: list[ServiceThread] = []

    def start(data_dir: Path | None = None, **overrides: Any) -> ServiceThread:
        service = ServiceThread(service_settings(data_dir or tmp_path / "store", **overrides))
        started.append(service.start())
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def grpc_service(start_service: Any) -> ServiceThread:
    """A running service on a fresh data directory."""
    service: ServiceThread = start_service()
    return service


@pytest.fixture
def channel(grpc_service: ServiceThread) -> Iterator[grpc.Channel]:
    """A blocking channel to the service, with room for large messages."""
    with grpc.insecure_channel(
        grpc_service.target, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    ) as ch:
        yield ch


def openssl(*args: str, cwd: Path) -> None:
    """Run openssl quietly in `cwd`."""
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA; certificates for a server on 127.0.0.1, a client and another host."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem",
                cwd=d)  # fmt: skip
    # Signed by the same CA for a name no test connects to: a host-name mismatch.
    (d / "other.ext").write_text("subjectAltName=DNS:other.example\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other",
            "-keyout", "other.key", "-out", "other.csr", cwd=d)  # fmt: skip
    openssl("x509", "-req", "-in", "other.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "other.ext", "-out", "other.pem",
            cwd=d)  # fmt: skip
    return d


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--table-minutes N [--table-seed S]`: run the table matrix on new seeds for N minutes;
    `--shared-crash-seeds N`: SIGKILL cycles of the crash test on PostgreSQL and S3."""
    parser.addoption(
        "--table-minutes",
        type=float,
        default=0.0,
        help="run the generated-table matrix on new seeds for this many minutes",
    )
    parser.addoption(
        "--shared-crash-seeds",
        type=int,
        default=SHARED_CRASH_SEEDS,
        help="SIGKILL cycles of the crash-consistency test on PostgreSQL and S3",
    )
    parser.addoption(
        "--table-seed",
        type=int,
        default=None,
        help="first seed of the timed table run (default: from the clock)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the timed table run."""
    config.addinivalue_line("markers", "table_minutes: the timed run of --table-minutes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the timed table run out unless --table-minutes asks for it."""
    if config.getoption("table_minutes") > 0:
        return
    timed = [item for item in items if item.get_closest_marker("table_minutes")]
    if timed:
        config.hook.pytest_deselected(items=timed)
        items[:] = [item for item in items if item not in timed]
