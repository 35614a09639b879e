"""A real Ray head on loopback for the Ray executor's tests, started once per session.

`ray start --head --block` runs in the foreground, so ending that one process (SIGTERM)
stops every Ray process it started: nothing is stopped by name, so other Ray users of the
machine are left alone (`ray stop` would stop them too). Ray swaps 127.0.0.1 for the
machine's outward address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 marks a single-node
cluster; with it every Ray process, the service's connection included, stays on loopback.
The head gets the S3 endpoint's variables, as a cluster gets its object store's
credentials from its own environment, not from the service.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backends import S3, free_port

# Ray 2.60 turns token authentication on for a head started where ~/.ray/auth_token exists,
# and any local `ray.init()` on the machine writes one; Ray Client (ray://) sends no token,
# so after that every ray:// connection of the tests timed out. The tests' head is on
# loopback and lives as long as the session: it runs without.
LOOPBACK_ONLY = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}
# Ray Client's proxy forks a server per client; with grpcio's fork support on (1.85), that
# server dies at birth ("epoll_wait error: Bad file descriptor").
HEAD_ONLY = {"GRPC_ENABLE_FORK_SUPPORT": "false"}
START_SECONDS = 90


@dataclass
class RayHead:
    """A running head: `address` and `client_address` are what MLOPS_RAY_ADDRESS takes."""

    address: str
    #: Ray Client (ray://), as a service on another machine reaches a cluster.
    client_address: str
    env: dict[str, str]


@contextlib.contextmanager
def head_process(s3_server: S3) -> Iterator[tuple[RayHead, subprocess.Popen[bytes]]]:
    """Start a Ray head with 2 CPUs and no dashboard on free loopback ports, in a temp dir.

    The head leads its own process group (all its Ray processes): killing the group is a
    head machine dying.
    """
    # Must be set before this process imports Ray: it reads it at import.
    for name, value in LOOPBACK_ONLY.items():
        os.environ[name] = value
    # Ray's socket paths must stay short (a Unix socket path has at most 107 bytes).
    temp_dir = Path(tempfile.mkdtemp(prefix="mlray-", dir="/tmp"))
    port, client_port = free_port(), free_port()
    env = {**os.environ, **s3_server.env, **LOOPBACK_ONLY}
    ray = str(Path(sys.executable).with_name("ray"))
    command = [
        ray, "start", "--head", "--block", "--num-cpus", "2", "--include-dashboard=false",
        "--port", str(port), "--ray-client-server-port", str(client_port),
        "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp_dir), "--disable-usage-stats",
    ]  # fmt: skip
    log = temp_dir / "head.log"
    with log.open("wb") as out:
        # Its own session, so a Ctrl-C in the terminal reaches pytest, not the head.
        proc = subprocess.Popen(
            command,
            env={**env, **HEAD_ONLY},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while b"Ray runtime started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield RayHead(f"127.0.0.1:{port}", f"ray://127.0.0.1:{client_port}", env), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        else:
            # Its leader is gone (a test killed the head): end what is left of its group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head(s3_server: S3) -> Iterator[RayHead]:
    """The session's Ray head (see head_process)."""
    with head_process(s3_server) as (head, _):
        yield head
