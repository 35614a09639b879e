"""bin/start end to end: all three parts on free ports, a model trained and used, clean stops."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "bin" / "start"
BUF = ROOT / "node_modules" / ".bin" / "buf"
READY_LINE = "All three are running"
ROWS = [
    {"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0,
     "flipper_length_mm": 230, "body_mass_g": 5800, "sex": "male", "year": 2009},
    {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
     "flipper_length_mm": 192, "body_mass_g": 3500, "sex": "female", "year": 2007},
]  # fmt: skip


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now (held together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_free(port: int) -> bool:
    """True when the port can be bound as the servers bind it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answers(url: str) -> bool:
    """True when the URL answers 200 now."""
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def children(pid: int) -> dict[int, str]:
    """Direct children of a process: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; the parent pid follows its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


@dataclass
class Stack:
    """A running bin/start and where its parts listen."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    gateway_port: int
    ui_port: int
    out: Path
    err: Path

    @property
    def ports(self) -> list[int]:
        """All three ports."""
        return [self.grpc_port, self.gateway_port, self.ui_port]

    def output(self) -> str:
        """What bin/start printed so far, both streams."""
        return self.out.read_text() + "\n--- stderr (tail) ---\n" + self.err.read_text()[-6000:]

    def stop(self, signum: int, timeout: float = 40) -> int:
        """Send a signal and wait for bin/start to exit."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            pytest.fail(f"bin/start did not stop within {timeout} s:\n{self.output()}")


def start(tmp_path: Path, ports: list[int], env: dict[str, str] | None = None) -> Stack:
    """Run bin/start on the given ports and a fresh data directory."""
    # Only our variables: settings from the developer's shell must not leak into the test.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    clean.update(
        MLOPS_PORT=str(ports[0]),
        MLOPS_GATEWAY_PORT=str(ports[1]),
        MLOPS_UI_PORT=str(ports[2]),
        MLOPS_DATA_DIR="data",  # relative: to the directory bin/start is run from
        MLOPS_START_TIMEOUT_SECONDS="75",
        **(env or {}),
    )
    out, err = tmp_path / "start.out", tmp_path / "start.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [str(START)], env=clean, cwd=tmp_path, stdout=stdout, stderr=stderr
        )
    grpc_port, gateway_port, ui_port = ports
    return Stack(process, grpc_port, gateway_port, ui_port, out, err)


def wait_ready(stack: Stack, timeout: float = 90) -> None:
    """Wait for bin/start to say all three are running."""
    deadline = time.monotonic() + timeout
    while READY_LINE not in stack.out.read_text():
        if stack.process.poll() is not None:
            pytest.fail(f"bin/start exited with {stack.process.returncode}:\n{stack.output()}")
        if time.monotonic() > deadline:
            stack.stop(signal.SIGKILL)
            pytest.fail(f"not ready within {timeout} s:\n{stack.output()}")
        time.sleep(0.2)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """bin/start running all three parts on free ports."""
    running = start(tmp_path, free_ports(3))
    try:
        wait_ready(running)
        yield running
    finally:
        if running.process.poll() is None:
            running.stop(signal.SIGTERM)


def buf_curl(port: int, method: str, body: dict[str, object]) -> dict[str, object]:
    """Call a method through buf curl, which learns the schema by server reflection."""
    assert BUF.exists(), "buf is missing: run `npm install` (bin/test does)"
    result = subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge",
         "--data", json.dumps(body), f"http://127.0.0.1:{port}/{method}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def arrow_ipc(rows: list[dict[str, object]]) -> bytes:
    """Rows as one Arrow IPC stream."""
    table = pa.Table.from_pylist(rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


# SIGINT is Ctrl-C in a terminal; SIGTERM is what a supervisor or `kill` sends.
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.timeout(180)
def test_start_trains_serves_and_stops_cleanly(
    stack: Stack, tmp_path: Path, data_dir_path: Path, stop_signal: signal.Signals
) -> None:
    printed = stack.out.read_text()
    assert f"127.0.0.1:{stack.grpc_port}" in printed
    assert f"http://127.0.0.1:{stack.gateway_port}" in printed
    assert f"http://127.0.0.1:{stack.ui_port}" in printed

    gateway = f"http://127.0.0.1:{stack.gateway_port}"
    with httpx.Client(base_url=gateway, timeout=60, trust_env=False) as http:
        csv = (data_dir_path / "penguins.csv").read_bytes()
        trained = http.post(
            "/v1/jobs",
            params={"wait": "true"},
            data={"kind": "catboost", "target_column": "species", "name": "smoke",
                  "hyperparameters": json.dumps({"iterations": 20})},
            files={"file": ("penguins.csv", csv, "text/csv")},
        )  # fmt: skip
        assert trained.status_code == 201, trained.text
        model_id = trained.json()["model_id"]
        predicted = http.post(f"/v1/models/{model_id}/predict", json={"rows": ROWS})
        assert predicted.status_code == 200, predicted.text
        labels = [p["label"] for p in predicted.json()["predictions"]]
        assert len(labels) == 2
        assert set(labels) <= {"Adelie", "Chinstrap", "Gentoo"}

    listed = buf_curl(stack.grpc_port, "mlops.v1.ModelService/ListModels", {})
    assert model_id in json.dumps(listed)
    request = {"modelId": model_id, "arrowIpc": base64.b64encode(arrow_ipc(ROWS)).decode()}
    answer = buf_curl(stack.grpc_port, "mlops.v1.PredictionService/Predict", request)
    table = pa.ipc.open_stream(base64.b64decode(str(answer["arrowIpc"]))).read_all()
    assert table.column("label").to_pylist() == labels

    ui = httpx.get(f"http://127.0.0.1:{stack.ui_port}/", timeout=30, trust_env=False)
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]

    assert stack.stop(stop_signal) == 0, stack.output()
    assert "stopped" in stack.err.read_text()
    assert children(stack.process.pid) == {}
    assert all(port_free(p) for p in stack.ports), stack.output()
    assert (tmp_path / "data").is_dir()  # MLOPS_DATA_DIR relative to the caller's directory


def wait_for_gateway(stack: Stack, timeout: float = 90) -> None:
    """Wait until the gateway process answers, whether or not the others are ready yet."""
    deadline = time.monotonic() + timeout
    while not answers(f"http://127.0.0.1:{stack.gateway_port}/healthz"):
        assert stack.process.poll() is None, stack.output()
        assert time.monotonic() < deadline, stack.output()
        time.sleep(0.2)


@pytest.mark.timeout(180)
def test_a_dying_part_stops_the_others_with_an_error(tmp_path: Path) -> None:
    stack = start(tmp_path, free_ports(3))
    try:
        # Once the gateway answers it is surely the process to kill; the others need not be
        # ready for the launcher to have to stop them.
        wait_for_gateway(stack)
        parts = children(stack.process.pid)
        gateway = [pid for pid, cmd in parts.items() if "-m rest_gateway" in cmd]
        assert len(parts) == 3 and len(gateway) == 1, parts
        os.kill(gateway[0], signal.SIGKILL)
        code = stack.process.wait(40)
    finally:
        if stack.process.poll() is None:
            stack.stop(signal.SIGTERM)
    assert code == 1
    assert "REST gateway was killed by SIGKILL; stopping the others" in stack.err.read_text()
    assert children(stack.process.pid) == {}
    assert all(port_free(p) for p in stack.ports), stack.output()


@pytest.mark.timeout(120)
def test_a_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    ports = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[1]))
        taken.listen()
        stack = start(tmp_path, ports)
        code = stack.process.wait(60)
    assert code == 2
    message = stack.err.read_text()
    assert f"port {ports[1]} for the REST gateway is already in use" in message
    assert "MLOPS_GATEWAY_PORT" in message
    assert not (tmp_path / "data").exists()  # nothing was started
    assert children(stack.process.pid) == {}
