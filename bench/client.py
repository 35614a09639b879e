"""The Python client and `mlops predict` against the in-process baseline, in one run.

`python -m bench client [--quick]` starts `python -m ml_service` on a loopback port, trains
both kinds on adult.csv through the client, and measures for each kind:

(a) client-side cost of a one-row DataFrame predict: encode the DataFrame, decode the
    answer into a DataFrame (no network), p50 over --calls (goal <= 0.3 ms);
(b) end to end: p50 of `client.predict(model, one_row_frame)` vs the library's in-process
    `predict_proba` on the same DataFrame (goal: at most the baseline + 1 ms), alternating;
(c) files vs StreamPredict of pre-encoded 64k-row batches of the same number of rows (goal:
    ratio >= 0.8 for `mlops predict` CSV -> CSV): the real `mlops predict` command (a
    subprocess, timed from start to exit) and `Client.predict_file` in this process, each
    CSV -> CSV and Parquet -> Parquet; the five take turns, medians of --repeats;
    The command is also timed by itself (its --json summary), without its start-up;
(d) peak RSS of `mlops predict` (the real command) on the CSV (goal < 500 MB);
(e) pre-encoded one-row Predict: round trip p50, and the server's own time for it, the p50
    of the `duration_ms` its rpc log line reports (goals: <= 0.5 ms for logistic
    regression, <= in-process predict_proba + 0.3 ms for CatBoost); the service's CPU per
    call (all its threads, from /proc: steadier than a p50 on a busy machine), and, to
    separate the two gRPC stacks from the handler, the round trip of an empty RPC (the
    health check) on the same channel.

And once, after both kinds have answered and the service is idle: the service's RSS with
both models loaded, and its forkserver's separately (goal: service <= 300 MB).

It prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import catboost
import grpc
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import skops.io
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc

from bench.harness import (
    DATA_DIR,
    child_pids,
    command_line,
    cpu_seconds,
    free_port,
    percentiles,
    process,
    rss_bytes,
    wait_until,
)
from bench.predict import stream_rows
from ml_service.kinds.sklearn_pipeline import TRUSTED_TYPES
from ml_service.memory import IDLE_SECONDS
from ml_service.model_input import internal_names
from mlops_client import Client, ModelVersion
from mlops_client.ipc import from_ipc, to_ipc

TARGET = "income"
KINDS = {"logistic_regression": {}, "catboost": {"iterations": 300}}


def library_model(data_dir: Path, version: ModelVersion) -> Any:
    """Load the stored artifact the way a user would in their own process."""
    path = str(next((data_dir / "artifacts" / version.model_id).iterdir()))
    if version.kind == "catboost":
        model = catboost.CatBoostClassifier()
        model.load_model(path)
        return model
    return skops.io.load(path, trusted=TRUSTED_TYPES)


def library_frame(frame: pd.DataFrame, version: ModelVersion) -> pd.DataFrame:
    """The rows as the library wants them: object categories, no NaN for CatBoost."""
    out = frame[[f.name for f in version.signature.features]].copy()
    for f in version.signature.features:
        if f.feature_type == "categorical":
            out[f.name] = out[f.name].astype(object)
            if version.kind == "catboost":
                out[f.name] = out[f.name].fillna("__missing__")
            else:
                out[f.name] = out[f.name].where(out[f.name].notna(), math.nan)
    # The libraries were fitted on the names kinds see (f0..fn), not the user's.
    out.columns = internal_names(len(out.columns))
    return out


def client_side_ms(
    client: Client, version: ModelVersion, frame: pd.DataFrame, calls: int
) -> dict[str, float]:
    """p50/p99 of encoding a one-row DataFrame and decoding its answer, without the network."""
    codec = client._frames  # the very codec predict() uses
    request = ps.PredictRequest(
        model_id=version.model_id, arrow_ipc=codec.encode((version.model_id, None), frame)
    )
    answer = client._prediction.Predict(request).arrow_ipc  # one real answer to decode
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        codec.encode((version.model_id, None), frame)
        codec.decode(from_ipc(answer), frame)
        samples.append(time.perf_counter_ns() - started)
    return percentiles(samples)


def end_to_end(client: Client, version: ModelVersion, model: Any, frame: pd.DataFrame,
               prepared: pd.DataFrame, calls: int) -> dict[str, float]:  # fmt: skip
    """p50 of the client's one-row predict and of in-process predict_proba, taking turns."""
    ours, base = [], []
    for _ in range(50):
        client.predict(version.model_id, frame)
        model.predict_proba(prepared)
    for _ in range(calls):
        started = time.perf_counter_ns()
        client.predict(version.model_id, frame)
        ours.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        model.predict_proba(prepared)
        base.append(time.perf_counter_ns() - started)
    client_p50, base_p50 = percentiles(ours)["p50_ms"], percentiles(base)["p50_ms"]
    return {"client_p50_ms": client_p50, "inprocess_p50_ms": base_p50,
            "added_ms": round(client_p50 - base_p50, 3)}  # fmt: skip


def server_time(
    stub: ps_grpc.PredictionServiceStub,
    model_id: str,
    features: pa.Table,
    log: Path,
    calls: int,
    server_pid: int,
) -> dict[str, float]:
    """Pre-encoded one-row Predict: round-trip p50, the server's own p50 and its CPU per call."""
    requests = [
        ps.PredictRequest(model_id=model_id, arrow_ipc=to_ipc(features.slice(i % 1000, 1)))
        for i in range(calls)
    ]
    for request in requests[:100]:
        stub.Predict(request, timeout=10)
    offset = log.stat().st_size
    samples = []
    cpu_before = cpu_seconds(server_pid)
    for request in requests:
        started = time.perf_counter_ns()
        stub.Predict(request, timeout=10)
        samples.append(time.perf_counter_ns() - started)
    cpu_ms = (cpu_seconds(server_pid) - cpu_before) * 1000 / calls
    time.sleep(0.5)  # let the last log lines reach the file
    with log.open("rb") as lines:
        lines.seek(offset)
        durations = [
            int(entry["duration_ms"] * 1e6)
            for entry in map(json.loads, lines)
            if entry.get("message") == "rpc" and entry.get("method") == "Predict"
        ]
    return {
        "round_trip_p50_ms": percentiles(samples)["p50_ms"],
        "server_p50_ms": percentiles(durations)["p50_ms"],
        "server_calls_logged": len(durations),
        "server_cpu_ms_per_call": round(cpu_ms, 3),
    }


def empty_round_trip(channel: grpc.Channel, calls: int) -> dict[str, float]:
    """p50 of the health check, the cheapest unary call: what the two gRPC stacks cost."""
    check = health_pb2_grpc.HealthStub(channel).Check
    request = health_pb2.HealthCheckRequest(service="")
    for _ in range(100):
        check(request, timeout=10)
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        check(request, timeout=10)
        samples.append(time.perf_counter_ns() - started)
    return percentiles(samples)


def idle_rss(server_pid: int) -> dict[str, float]:
    """RSS of the idle service and of its forkserver, in MB, once it has trimmed its heaps."""
    time.sleep(IDLE_SECONDS + 2.0)
    figures = {"service_rss_mb": round(rss_bytes(server_pid) / 2**20, 1)}
    # What of it is the process's own memory, and what pages of libraries' files (CatBoost's
    # alone is a 276 MB file), which the kernel can share and drop.
    rollup = dict(
        line.split(":", 1) for line in Path(f"/proc/{server_pid}/smaps_rollup").read_text()
        .splitlines()[1:]
    )  # fmt: skip
    anonymous_kb = int(rollup["Anonymous"].split()[0])
    figures["service_anonymous_mb"] = round(anonymous_kb / 1024, 1)
    figures["service_file_backed_mb"] = round(figures["service_rss_mb"] - anonymous_kb / 1024, 1)
    for child in child_pids(server_pid):
        name = "forkserver" if "forkserver" in command_line(child) else f"child_{child}"
        figures[f"{name}_rss_mb"] = round(rss_bytes(child) / 2**20, 1)
    return figures


def write_csv(features: pa.Table, rows: int, path: Path) -> None:
    """Write `rows` feature rows to a CSV, a block at a time."""
    with pacsv.CSVWriter(path, features.schema) as writer:
        left = rows
        while left > 0:
            part = features.slice(0, min(left, features.num_rows))
            writer.write_table(part)
            left -= part.num_rows


def write_parquet(csv_path: Path, path: Path) -> None:
    """Write the CSV's rows to a Parquet file, a block at a time, as a user's export would."""
    reader = pacsv.open_csv(csv_path, convert_options=pacsv.ConvertOptions(
        null_values=[""], strings_can_be_null=True))  # fmt: skip
    with pq.ParquetWriter(path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def run_command(command: list[str]) -> tuple[float, int, str]:
    """Run a command to its end; return its wall time, peak resident set size and output."""
    peak = 0
    started = time.perf_counter()
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        with subprocess.Popen(command, stdout=output, stderr=errors) as proc:
            while proc.poll() is None:
                with contextlib.suppress(OSError, RuntimeError):  # it may end between checks
                    peak = max(peak, rss_bytes(proc.pid))
                time.sleep(0.05)
        seconds = time.perf_counter() - started
        output.seek(0)
        errors.seek(0)
        if proc.returncode != 0:
            sys.exit(f"bench: {' '.join(command)} failed: {errors.read().decode()}")
        return seconds, peak, output.read().decode()


def file_throughput(
    args: argparse.Namespace,
    client: Client,
    stub: ps_grpc.PredictionServiceStub,
    model_id: str,
    features: pa.Table,
    inputs: dict[str, Path],
    tmp: Path,
) -> dict[str, Any]:
    """Rows/s of files through the CLI and predict_file against the pre-encoded stream."""
    mlops = [str(Path(sys.executable).parent / "mlops"), "--json", "--server", client.target,
             "predict"]  # fmt: skip
    times: dict[str, list[float]] = {}
    peaks: list[int] = []

    def cli(fmt: str) -> None:
        out = tmp / f"cli_out.{fmt}"
        seconds, peak, output = run_command([*mlops, model_id, str(inputs[fmt]), "-o", str(out)])
        times.setdefault(f"cli_{fmt}", []).append(seconds)
        # Its own timing, from the version lookup to the last answer written: without the
        # interpreter's start and imports (~0.35 s once bytecode is compiled), which a long
        # file hides.
        times.setdefault(f"cli_{fmt}_after_start", []).append(json.loads(output)["seconds"])
        if fmt == "csv":
            peaks.append(peak)

    def timed(name: str, fn: Any) -> None:
        started = time.perf_counter()
        fn()
        times.setdefault(name, []).append(time.perf_counter() - started)

    for _ in range(args.repeats):
        timed("stream", lambda: stream_rows(stub, model_id, features, args.rows))
        cli("csv")
        cli("parquet")
        for fmt in ("csv", "parquet"):
            out = tmp / f"client_out.{fmt}"
            timed(f"predict_file_{fmt}", lambda f=fmt, o=out: client.predict_file(
                model_id, inputs[f], o))  # fmt: skip
    medians = {name: statistics.median(seconds) for name, seconds in times.items()}
    figures: dict[str, Any] = {f"{n}_rows_per_s": round(args.rows / t) for n, t in medians.items()}
    figures["vs_stream"] = {
        n: round(medians["stream"] / t, 2) for n, t in medians.items() if n != "stream"
    }
    figures["cli_peak_rss_mb"] = round(max(peaks) / 2**20, 1)
    return figures


def measure_kind(
    args: argparse.Namespace,
    client: Client,
    stub: ps_grpc.PredictionServiceStub,
    version: ModelVersion,
    model: Any,
    one_row: pd.DataFrame,
    features: pa.Table,
    inputs: dict[str, Path],
    tmp: Path,
    log: Path,
    server_pid: int,
) -> dict[str, Any]:
    """Measure one trained model: client-side cost, end to end, server time, file vs stream, RSS."""
    model_id, prepared = version.model_id, library_frame(one_row, version)
    figures: dict[str, Any] = {
        "client_side": client_side_ms(client, version, one_row, args.calls),
        **end_to_end(client, version, model, one_row, prepared, args.calls),
        "one_row_preencoded": server_time(stub, model_id, features, log, args.calls, server_pid),
        "empty_rpc": empty_round_trip(client._channel, args.calls),
    }
    figures["server_vs_inprocess_ms"] = round(
        figures["one_row_preencoded"]["server_p50_ms"] - figures["inprocess_p50_ms"], 3
    )
    figures["files"] = file_throughput(args, client, stub, model_id, features, inputs, tmp)
    return figures


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement and return the figures."""
    table = pacsv.read_csv(DATA_DIR / "adult.csv", convert_options=pacsv.ConvertOptions(
        null_values=[""], strings_can_be_null=True))  # fmt: skip
    frame = pd.read_csv(DATA_DIR / "adult.csv")
    one_row = frame.drop(columns=[TARGET]).iloc[7:8]
    features = table.drop_columns([TARGET])
    port = free_port()
    results: dict[str, Any] = {
        "benchmark": "client",
        "mode": "quick" if args.quick else "full",
        "file_rows": args.rows,
        "calls": args.calls,
        "kinds": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "store"
        inputs = {"csv": Path(tmp) / "rows.csv", "parquet": Path(tmp) / "rows.parquet"}
        write_csv(features, args.rows, inputs["csv"])
        write_parquet(inputs["csv"], inputs["parquet"])
        command = ["-m", "ml_service", "--port", str(port), "--data-dir", str(data_dir)]
        log = Path(tmp) / "server.log"
        with process(command, log) as server, Client(f"127.0.0.1:{port}") as client:
            wait_until(lambda: bool(client.kinds()), "ml_service", 120)
            stub = ps_grpc.PredictionServiceStub(client._channel)
            for kind, params in KINDS.items():
                version = client.train(table, kind, TARGET, params)
                results["kinds"][kind] = measure_kind(
                    args, client, stub, version, library_model(data_dir, version), one_row,
                    features, inputs, Path(tmp), log, server.pid,
                )  # fmt: skip
            results["idle"] = idle_rss(server.pid)
    return results


def main(argv: list[str]) -> None:
    """Parse arguments, measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench client", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200k-row file, fewer calls")
    parser.add_argument(
        "--rows", type=int, help="rows in the generated CSV (default 1M; try 10000000)"
    )
    parser.add_argument("--calls", type=int, help="one-row calls per measurement (default 2,000)")
    parser.add_argument("--repeats", type=int, help="repeats per throughput figure")
    args = parser.parse_args(argv)
    args.rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.calls = args.calls or (500 if args.quick else 2_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    results = measure(args)
    print(
        f"{'kind':<20} {'client-side p50':>15} {'e2e p50':>8} {'in-proc p50':>11} {'added':>7} "
        f"{'1-row RTT':>9} {'server p50':>10} {'server CPU':>10} {'empty RPC':>9}"
    )
    for kind, k in results["kinds"].items():
        one_row = k["one_row_preencoded"]
        print(
            f"{kind:<20} {k['client_side']['p50_ms']:>13}ms {k['client_p50_ms']:>6}ms "
            f"{k['inprocess_p50_ms']:>9}ms {k['added_ms']:>5}ms "
            f"{one_row['round_trip_p50_ms']:>7}ms {one_row['server_p50_ms']:>8}ms "
            f"{one_row['server_cpu_ms_per_call']:>8}ms {k['empty_rpc']['p50_ms']:>7}ms"
        )
    print(f"\n{args.rows:,}-row files, rows/s (ratio vs the pre-encoded stream of the same run)")
    names = ["cli_csv", "cli_csv_after_start", "cli_parquet", "cli_parquet_after_start",
             "predict_file_csv", "predict_file_parquet"]  # fmt: skip
    print(f"{'kind':<20} {'stream':>10} " + " ".join(f"{n:>27}" for n in names) + " CLI RSS MB")
    for kind, k in results["kinds"].items():
        files = k["files"]
        cells = " ".join(
            f"{files[n + '_rows_per_s']:>19,} ({files['vs_stream'][n]:>4})" for n in names
        )
        print(
            f"{kind:<20} {files['stream_rows_per_s']:>10,} {cells} {files['cli_peak_rss_mb']:>10}"
        )
    print("idle service:", ", ".join(f"{k} {v}" for k, v in results["idle"].items()))
    print(json.dumps(results))
