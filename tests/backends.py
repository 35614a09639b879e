"""Real shared-mode components for tests: a PostgreSQL server and an S3 endpoint on loopback.

PostgreSQL comes from Debian's `postgresql` package (bin/test installs it). `initdb` refuses
to run as root and CI runs as root, so the cluster is made and run as the `postgres` user in
a temporary directory that user owns. S3 is moto's server mode, a real HTTP S3 API, in a
process of its own. Both live for the session; each test gets a fresh database and bucket.
Neither is skipped when it cannot start: the test fails and says why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow.fs as pafs
import pytest


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bin(name: str) -> str:
    """Find a PostgreSQL program; Debian keeps the server's outside PATH."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(f"{name} not found: install Debian's postgresql package (bin/test does)")
    return found


@dataclass
class Postgres:
    """A running cluster; `url` reaches its `postgres` database."""

    directory: Path
    port: int
    as_user: list[str]

    def stop(self) -> None:
        """Stop the server, closing every connection (a database lost to its clients)."""
        _run([*self.as_user, pg_bin("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast",
              "-w", "-t", "30", "stop"], "pg_ctl stop")  # fmt: skip

    def start(self) -> None:
        """Start the server again on the same port, with the same databases."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run([*self.as_user, pg_bin("pg_ctl"), "-D", str(self.directory / "data"), "-o", options,
              "-l", str(self.directory / "log"), "-w", "-t", "30", "start"],
             f"pg_ctl start (log in {self.directory / 'log'})")  # fmt: skip

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Stop the server for the block; it runs again afterwards whatever happened."""
        self.stop()
        try:
            yield
        finally:
            if not self.running():
                self.start()

    def running(self) -> bool:
        """Tell whether the server accepts connections."""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def url(self, database: str = "postgres") -> str:
        """Return a postgresql:// URL of a database of this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster on a free loopback port, stopped and deleted after the session."""
    with run_postgres() as cluster:
        yield cluster


@contextlib.contextmanager
def run_postgres() -> Iterator[Postgres]:
    """Run a throwaway PostgreSQL cluster for the block (`python -m bench scaled` uses it too)."""
    directory = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = directory / "data"
    # trust on loopback: a throwaway cluster; fsync off: nothing here must survive a crash.
    _run(
        [*as_user, pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
         "--no-sync", "-E", "UTF8"],
        "initdb",
    )  # fmt: skip
    cluster = Postgres(directory, free_port(), as_user)
    try:
        cluster.start()
        yield cluster
    finally:
        subprocess.run(
            [*as_user, pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(directory, ignore_errors=True)


MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
"""


@dataclass
class S3:
    """An S3 endpoint; `env` holds the standard AWS variables that reach it."""

    endpoint: str
    process: subprocess.Popen[str] | None = None

    def stop(self) -> None:
        """Kill the server: the endpoint refuses connections, and every object is gone."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    @property
    def env(self) -> dict[str, str]:
        """AWS variables for a process that should use this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow filesystem on the endpoint, to look at or tamper with objects."""
        return pafs.S3FileSystem(
            endpoint_override=self.endpoint,
            scheme="http",
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            allow_bucket_creation=True,
        )

    def create_bucket(self) -> str:
        """Create an empty bucket and return its name."""
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.filesystem().create_dir(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    """moto's S3 server on a free loopback port, in a process of its own."""
    with run_moto() as s3:
        yield s3


@contextlib.contextmanager
def run_moto(*, checks_credentials: bool = False) -> Iterator[S3]:
    """Run moto's S3 server for the block (tests that take an S3 endpoint away start their own).

    `checks_credentials`: refuse every request whose access key moto's IAM does not know
    (none is known), as S3 does a wrong key; by default moto takes any.
    """
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if checks_credentials else None
    # stdin stays open while we live; the server exits when it closes.
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # One access-log line per request would bury the test output.
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        pytest.fail(f"moto's S3 server did not start (exit code {proc.wait(10)})")
    try:
        yield S3(f"http://127.0.0.1:{line}", proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.stdout.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@dataclass
class Shared:
    """One fresh PostgreSQL database and S3 bucket: what N replicas share."""

    database_url: str
    artifact_uri: str
    s3: S3


@pytest.fixture
def shared(postgres: Postgres, s3_server: S3, monkeypatch: pytest.MonkeyPatch) -> Shared:
    """A fresh database and bucket; the AWS variables point this process at the endpoint."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.create_bucket()
    return Shared(postgres.create_database(), f"s3://{bucket}/mlops", s3_server)
