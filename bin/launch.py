"""Run the gRPC service, the REST gateway and the web UI together on loopback.

`bin/start` runs this with the project's Python once the environment is set up. Each part is
its real command (`python -m ml_service`, `python -m rest_gateway`, `python -m ui`), so this
file imports none of them. Ports and the data directory come from the parts' own variables:
MLOPS_PORT (gRPC, 50051), MLOPS_GATEWAY_PORT (8000), MLOPS_UI_PORT (7860) and MLOPS_DATA_DIR
(./data in the repository); the hosts are always 127.0.0.1. Every other MLOPS_* variable
reaches the parts unchanged. MLOPS_START_TIMEOUT_SECONDS (120) bounds the wait for readiness.

Ctrl-C or SIGTERM stops all three: SIGTERM to each, SIGKILL to what is left after a grace; a
second Ctrl-C kills at once. If one part dies, the others are stopped and the exit code is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops import names

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
READINESS = names.READINESS_SERVICE
POLL_SECONDS = 0.25
# The service's own graceful stop takes up to MLOPS_GRACE_SECONDS; SIGKILL comes this much later.
EXTRA_GRACE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_output_lock = threading.Lock()
# Plain HTTP to our own loopback ports must not go through a proxy from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ConfigError(Exception):
    """A setting the launcher cannot use; the message says which variable to change."""


@dataclass
class Part:
    """One of the three processes: how to run it, how to tell it is ready, where it lives."""

    name: str
    module: str
    port_variable: str
    port: int
    args: list[str]
    url: str
    hint: str
    ready_check: Callable[[], bool] = field(repr=False, default=lambda: False)
    after: Part | None = None  # asked only once this part is ready (no 503s to log meanwhile)
    process: subprocess.Popen[bytes] | None = None
    ready: bool = False
    reader: threading.Thread | None = None


def say(text: str, stream: IO[str] | None = None) -> None:
    """Print one line whole, even while the parts' output is being copied."""
    with _output_lock:
        print(text, file=stream or sys.stdout, flush=True)


def env_int(name: str, default: int, low: int, high: int) -> int:
    """Read an integer variable, or explain which variable is wrong."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def env_seconds(name: str, default: float, minimum: float) -> float:
    """Read a number of seconds, or explain which variable is wrong."""
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number") from None
    if not value >= minimum:  # also refuses nan
        raise ConfigError(f"{name}={text} is less than {minimum:g}")
    return value


def port_in_use(port: int) -> str | None:
    """Try to bind the port as the servers will; return why it failed, or None when free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The servers set SO_REUSEADDR too, so a socket lingering in TIME_WAIT after the last
        # run does not count as in use, while a live listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def check_ports(parts: list[Part]) -> None:
    """Refuse to start anything when a port is taken or shared; name the variable to change."""
    seen: dict[int, Part] = {}
    for part in parts:
        if part.port in seen:
            other = seen[part.port]
            raise ConfigError(
                f"{part.name} and {other.name} would both use port {part.port}: "
                f"set {part.port_variable} or {other.port_variable} to another port"
            )
        seen[part.port] = part
        problem = port_in_use(part.port)
        if problem is not None:
            others = {p.port for p in parts}
            free = (p for p in range(part.port + 1, min(part.port + 100, 65536)) if p not in others)
            spare = next((p for p in free if port_in_use(p) is None), None)
            example = "" if spare is None else f", e.g. {part.port_variable}={spare} bin/start"
            raise ConfigError(
                f"port {part.port} for the {part.name} is already in use ({problem}): "
                f"stop what holds it or set {part.port_variable} to a free port{example}"
            )


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: the URL answers 200."""

    def check() -> bool:
        try:
            with _http.open(url, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    return check


def grpc_serving(target: str) -> tuple[Callable[[], bool], Callable[[], None]]:
    """A readiness check on the service's readiness health status, and a closer."""
    options = [
        ("grpc.enable_http_proxy", 0),
        # Retry the connection quickly while the service starts, not after seconds of backoff.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 500),
    ]
    channel = grpc.insecure_channel(target, options=options)
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=READINESS)

    def check() -> bool:
        try:
            response = stub.Check(request, timeout=2)
        except grpc.RpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    return check, channel.close


def plan() -> tuple[list[Part], Path]:
    """Read the variables into the three parts and the data directory."""
    tls = [n for n in ("MLOPS_TLS_CERT_FILE", "MLOPS_TLS_KEY_FILE") if os.environ.get(n)]
    if tls:
        # The gateway and the readiness check here talk plaintext to the loopback service.
        raise ConfigError(f"bin/start serves plaintext gRPC on loopback: unset {' and '.join(tls)}")
    grpc_port = env_int("MLOPS_PORT", 50051, 1, 65535)
    gateway_port = env_int("MLOPS_GATEWAY_PORT", 8000, 1, 65535)
    ui_port = env_int("MLOPS_UI_PORT", 7860, 1, 65535)
    # Relative to where the person ran the command; by default ./data in the repository.
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR") or ROOT / "data").resolve()
    grpc_target = f"{HOST}:{grpc_port}"
    gateway_url = f"http://{HOST}:{gateway_port}"
    ui_url = f"http://{HOST}:{ui_port}"
    service = Part(
        "gRPC service",
        "ml_service",
        "MLOPS_PORT",
        grpc_port,
        ["--host", HOST, "--port", str(grpc_port), "--data-dir", str(data_dir)],
        grpc_target,
        f"try: npx buf curl --protocol grpc --http2-prior-knowledge --list-methods "
        f"http://{grpc_target}",
    )
    gateway = Part(
        "REST gateway",
        "rest_gateway",
        "MLOPS_GATEWAY_PORT",
        gateway_port,
        ["--host", HOST, "--port", str(gateway_port), "--grpc-target", grpc_target],
        gateway_url,
        f"API docs at {gateway_url}/docs",
        http_ok(f"{gateway_url}/readyz"),
        after=service,
    )
    ui = Part(
        "web UI",
        "ui",
        "MLOPS_UI_PORT",
        ui_port,
        ["--host", HOST, "--port", str(ui_port), "--gateway-url", gateway_url],
        ui_url,
        "open it in a browser",
        http_ok(f"{ui_url}/"),
    )
    return [service, gateway, ui], data_dir


def _die_with_launcher() -> None:
    # Runs in the child between fork and exec: if the launcher is killed outright (SIGKILL),
    # the kernel sends the child SIGTERM, so no server is left holding its port.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def copy_output(part: Part, stream: IO[bytes]) -> None:
    """Copy a part's output to stderr, each line prefixed with the part's name."""
    prefix = f"{part.module:<12}| "
    for raw in iter(stream.readline, b""):
        say(prefix + raw.decode(errors="replace").rstrip("\n"), sys.stderr)
    stream.close()


def spawn(parts: list[Part], env: dict[str, str]) -> None:
    """Start every part, each in its own process group so a terminal's Ctrl-C reaches only us."""
    linux = sys.platform.startswith("linux")
    for part in parts:
        part.process = subprocess.Popen(
            [sys.executable, "-m", part.module, *part.args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_die_with_launcher if linux else None,
        )
    # Threads only after the last fork: preexec_fn is unsafe once other threads exist.
    for part in parts:
        assert part.process is not None and part.process.stdout is not None
        part.reader = threading.Thread(
            target=copy_output, args=(part, part.process.stdout), daemon=True
        )
        part.reader.start()


class Stopper:
    """Turn SIGINT and SIGTERM into a stop request; a second one asks to kill at once."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurry = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set():
            self.hurry.set()
        self.requested.set()

    def install(self) -> None:
        """Handle both signals from now on."""
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def running(parts: list[Part]) -> list[Part]:
    """The parts whose process has not exited yet."""
    return [p for p in parts if p.process is not None and p.process.poll() is None]


def kill_group(part: Part) -> None:
    """SIGKILL the part's whole process group (its training workers too)."""
    assert part.process is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(part.process.pid, signal.SIGKILL)


def stop_all(parts: list[Part], grace: float, stopper: Stopper) -> bool:
    """SIGTERM every part, SIGKILL what is left after the grace; True when all stopped cleanly."""
    for part in running(parts):
        assert part.process is not None
        part.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running(parts) and time.monotonic() < deadline and not stopper.hurry.is_set():
        time.sleep(0.05)
    clean = True
    for part in running(parts):
        say(f"bin/start: the {part.name} did not stop in time; killing it", sys.stderr)
        kill_group(part)
        clean = False
    for part in parts:
        assert part.process is not None
        code = part.process.wait()
        # Ending by the SIGTERM it was sent (no handler of its own) is a stop as asked.
        if code not in (0, -signal.SIGTERM):
            clean = False
        if part.reader is not None:
            part.reader.join(2)
        # Anything the part left behind in its group (a worker, a forkserver) goes too.
        kill_group(part)
    return clean


def describe_exit(code: int) -> str:
    """Say how a process ended, naming a signal rather than a negative number."""
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def supervise(parts: list[Part], timeout: float, stopper: Stopper) -> int:
    """Wait for readiness, print the URLs, then watch until a stop or a death; return the code."""
    started = time.monotonic()
    while not stopper.requested.is_set():
        for part in parts:
            assert part.process is not None
            code = part.process.poll()
            if code is not None:
                say(
                    f"bin/start: the {part.name} {describe_exit(code)}; stopping the others",
                    sys.stderr,
                )
                return 1
        waiting = [p for p in parts if not p.ready]
        for part in waiting:
            if part.after is not None and not part.after.ready:
                continue
            if part.ready_check():
                part.ready = True
                say(f"{part.name:<13} ready at {part.url:<24} ({part.hint})")
                if all(p.ready for p in parts):
                    say("All three are running; press Ctrl-C to stop them.")
        if waiting and time.monotonic() - started > timeout:
            names = ", ".join(p.name for p in parts if not p.ready)
            say(
                f"bin/start: not ready after {timeout:g} s: {names} "
                "(see the log above; MLOPS_START_TIMEOUT_SECONDS sets the wait)",
                sys.stderr,
            )
            return 1
        stopper.requested.wait(POLL_SECONDS)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Check the ports, start the three parts, supervise them and stop them."""
    parser = argparse.ArgumentParser(
        prog="bin/start", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.parse_args(argv)
    stopper = Stopper()
    stopper.install()
    try:
        parts, data_dir = plan()
        timeout = env_seconds("MLOPS_START_TIMEOUT_SECONDS", 120.0, minimum=1.0)
        grace = env_seconds("MLOPS_GRACE_SECONDS", 10.0, minimum=0.0) + EXTRA_GRACE_SECONDS
        check_ports(parts)
    except ConfigError as error:
        say(f"bin/start: {error}", sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # the parts' logs arrive as they are written
    env.setdefault("MLOPS_LOG_JSON", "false")  # a terminal reads text better than JSON lines
    say(f"bin/start: data directory {data_dir}")
    spawn(parts, env)
    # The channel starts gRPC's own threads, so it is made only after the last fork.
    check, close = grpc_serving(parts[0].url)
    parts[0].ready_check = check
    try:
        code = supervise(parts, timeout, stopper)
    finally:
        close()
        clean = stop_all(parts, grace, stopper)
    if code == 0 and not clean:
        code = 1
    say(
        "bin/start: stopped" if code == 0 else f"bin/start: stopped with exit code {code}",
        sys.stderr,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
