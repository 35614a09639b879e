"""Training on Ray against the local executor, on this machine, in one run.

`python -m bench ray [--quick]` starts moto's S3 server and a Ray head (2 CPUs, loopback)
and, for each executor (local worker processes, then Ray actors asking for 2 CPUs), a
`python -m ml_service` over SQLite and the same bucket, so only the executor differs. It
measures:

(a) upload to committed version: the time from the first byte of a training upload to
    the job's success, for a small table (penguins, 344 rows) and a large one (adult.csv
    rows repeated to 1,000,000), CatBoost with 20 iterations; the median of repeats and
    the ratio Ray / local;
(b) single-row Predict latency (p50/p99 over N calls) on an idle service (the baseline),
    and while a long CatBoost training runs on the same service, local vs Ray.

On one machine Ray adds its actor start and the bucket round trips without taking any
training work off the machine: the figures show the cost of the Ray path, not the gain a
cluster brings. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.csv as pacsv
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb

from bench.harness import DATA_DIR, free_port, percentiles, wait_until
from mlops_client.ipc import table_chunks, to_ipc
from tests.backends import run_moto

# Ray keeps every process on loopback only when told the cluster is a single node.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def read(name: str) -> pa.Table:
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    return pacsv.read_csv(DATA_DIR / name, convert_options=options)


@contextlib.contextmanager
def ray_head(env: dict[str, str], temp_dir: Path) -> Iterator[str]:
    """`ray start --head --block` on loopback; ending that one process stops the head."""
    port = free_port()
    ray = str(Path(sys.executable).with_name("ray"))
    command = [
        ray, "start", "--head", "--block", "--num-cpus", "2", "--include-dashboard=false",
        "--port", str(port), "--ray-client-server-port", str(free_port()),
        "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp_dir), "--disable-usage-stats",
    ]  # fmt: skip
    log = temp_dir / "head.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: b"Ray runtime started" in log.read_bytes(), "the Ray head", 120)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


@contextlib.contextmanager
def service(env: dict[str, str], data_dir: Path) -> Iterator[grpc.Channel]:
    """`python -m ml_service` with this environment; yields a channel once it is ready."""
    port = free_port()
    command = [sys.executable, "-m", "ml_service", "--port", str(port), "--data-dir", str(data_dir)]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with (data_dir.parent / f"service-{port}.log").open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            ready = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
            wait_until(lambda: health.Check(ready, timeout=1).status == 1, "ml_service", 120)
            yield channel
    finally:
        proc.terminate()
        proc.wait(30)


def start_job(channel: grpc.Channel, table: pa.Table, target: str, params: dict[str, Any]) -> str:
    spec = pb.TrainingJobSpec(
        kind="catboost", target_column=target, hyperparameters=struct_pb2.Struct()
    )
    spec.hyperparameters.update(params)

    def messages() -> Iterator[ts.CreateTrainingJobRequest]:
        yield ts.CreateTrainingJobRequest(spec=spec)
        for piece in table_chunks(table):
            yield ts.CreateTrainingJobRequest(arrow_chunk=piece)

    stub = ts_grpc.TrainingServiceStub(channel)
    return str(stub.CreateTrainingJob(messages(), timeout=1800).job.job_id)


def upload_to_version(channel: grpc.Channel, table: pa.Table, target: str) -> tuple[float, str]:
    """Seconds from upload to the committed version, and the model id."""
    started = time.perf_counter()
    job_id = start_job(channel, table, target, {"iterations": 20})
    stub = ts_grpc.TrainingServiceStub(channel)
    watch = ts.WatchTrainingJobRequest(job_id=job_id)
    final = list(stub.WatchTrainingJob(watch, timeout=3600))[-1].job
    if final.state != pb.JOB_STATE_SUCCEEDED:
        sys.exit(f"bench: training failed: {final.error.message}")
    return time.perf_counter() - started, final.model_id


def predict_latency(channel: grpc.Channel, model_id: str, row: pa.Table, calls: int) -> list[int]:
    stub = ps_grpc.PredictionServiceStub(channel)
    request = ps.PredictRequest(model_id=model_id, arrow_ipc=to_ipc(row))
    samples = []
    for _ in range(calls):
        began = time.perf_counter_ns()
        stub.Predict(request, timeout=30)
        samples.append(time.perf_counter_ns() - began)
    return samples


def while_training(
    channel: grpc.Channel, model_id: str, row: pa.Table, adult: pa.Table, calls: int
) -> list[int]:
    """Predict latencies measured while a long CatBoost fit runs; the job is then cancelled."""
    job_id = start_job(channel, adult, "income", {"iterations": 10000})
    stub = ts_grpc.TrainingServiceStub(channel)

    def fitting() -> bool:
        job = stub.GetTrainingJob(ts.GetTrainingJobRequest(job_id=job_id)).job
        return bool(job.progress.iteration > 0)

    wait_until(fitting, "the long training", 180)
    try:
        return predict_latency(channel, model_id, row, calls)
    finally:
        stub.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job_id))


def measure_executor(
    name: str, env: dict[str, str], tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    penguins, adult = read("penguins.csv"), read("adult.csv")
    copies = -(-args.large_rows // adult.num_rows)
    large = pa.concat_tables([adult] * copies).slice(0, args.large_rows).combine_chunks()
    figures: dict[str, Any] = {}
    with service(env, tmp / name / "store") as channel:
        # A first job warms what a first job pays once (forkserver imports, Ray workers).
        upload_to_version(channel, penguins, "species")
        small = [upload_to_version(channel, penguins, "species")[0] for _ in range(args.repeats)]
        big = [upload_to_version(channel, large, "income")[0] for _ in range(args.large_repeats)]
        figures["small_upload_to_version_s"] = round(statistics.median(small), 3)
        figures["large_upload_to_version_s"] = round(statistics.median(big), 3)
        _, model_id = upload_to_version(channel, penguins, "species")
        row = penguins.drop(["species"]).slice(0, 1)
        predict_latency(channel, model_id, row, 50)  # load the model, warm the channel
        idle = predict_latency(channel, model_id, row, args.calls)
        busy = while_training(channel, model_id, row, adult, args.calls)
        figures["predict_idle"] = percentiles(idle)
        figures["predict_while_training"] = percentiles(busy)
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mlray-") as tmp_name, run_moto() as s3:
        tmp = Path(tmp_name)
        bucket = s3.create_bucket()
        base = {**os.environ, **s3.env, **RAY_ENV, "MLOPS_LOG_JSON": "false"}
        results: dict[str, Any] = {"benchmark": "ray", "large_rows": args.large_rows}
        uri = {"MLOPS_ARTIFACT_URI": f"s3://{bucket}/local"}
        results["local"] = measure_executor("local", {**base, **uri}, tmp, args)
        (tmp / "head").mkdir()
        with ray_head(base, tmp / "head") as address:
            env = {
                **base,
                "MLOPS_ARTIFACT_URI": f"s3://{bucket}/ray",
                "MLOPS_TRAINING_EXECUTOR": "ray",
                "MLOPS_RAY_ADDRESS": address,
                "MLOPS_RAY_CPUS": "2",
            }
            results["ray"] = measure_executor("ray", env, tmp, args)
    local, ray = results["local"], results["ray"]
    for key in ("small_upload_to_version_s", "large_upload_to_version_s"):
        results[f"{key.removesuffix('_s')}_ratio_ray_to_local"] = round(ray[key] / local[key], 2)
    for who in (local, ray):
        who["predict_while_training_p50_ratio_to_idle"] = round(
            who["predict_while_training"]["p50_ms"] / who["predict_idle"]["p50_ms"], 2
        )
    return results


def main(argv: list[str]) -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench ray", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 200k large rows")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large-repeats", type=int, default=3)
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.large_repeats, args.large_rows, args.calls = 2, 1, 200_000, 200
    results = run(args)
    for executor in ("local", "ray"):
        for key, value in results[executor].items():
            print(f"{executor:>5} {key:>42}: {value}")
    print(json.dumps(results))
