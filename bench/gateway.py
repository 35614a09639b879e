"""Single-row JSON predict through the REST gateway vs direct gRPC Predict, in one run.

Starts the gRPC service and a uvicorn gateway as subprocesses on loopback (unless given),
trains a small penguins model, then alternates calls: one gRPC Predict with a prebuilt Arrow
row, one HTTP POST of the same row as JSON over a keep-alive httpx client. Prints p50/p99 of
each and what the gateway adds; the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb

from bench.harness import DATA_DIR, free_port, percentiles, process, wait_until

DATA = DATA_DIR / "penguins.csv"
TARGET_MS = 2.0


def http_parser() -> str:
    """Name the HTTP parser uvicorn's default (http="auto") picks in this environment."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def ipc(table: pa.Table) -> bytes:
    """Serialize a table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def train(channel: grpc.Channel, table: pa.Table) -> str:
    """Train a small CatBoost model over gRPC and return its id."""
    hyperparameters = struct_pb2.Struct()
    hyperparameters.update({"iterations": 20})
    spec = pb.TrainingJobSpec(
        kind="catboost", target_column="species", hyperparameters=hyperparameters
    )
    messages = [
        ts.CreateTrainingJobRequest(spec=spec),
        ts.CreateTrainingJobRequest(arrow_chunk=ipc(table)),
    ]
    training = ts_grpc.TrainingServiceStub(channel)
    job = training.CreateTrainingJob(iter(messages), timeout=60).job
    watch = ts.WatchTrainingJobRequest(job_id=job.job_id)
    final = [update.job for update in training.WatchTrainingJob(watch, timeout=300)][-1]
    if final.state != pb.JOB_STATE_SUCCEEDED:
        sys.exit(f"bench: training failed: {final.error.message}")
    model_id: str = final.model_id
    return model_id


def measure(
    grpc_target: str, gateway_url: str, model_id: str | None, calls: int, warmup: int
) -> dict[str, Any]:
    """Train a model if none is given, then time alternating gRPC and gateway predictions."""
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    table = pacsv.read_csv(DATA, convert_options=options)
    with grpc.insecure_channel(grpc_target) as channel:
        model_id = model_id or train(channel, table)
        features = table.drop_columns(["species"]).slice(0, 1)
        request = ps.PredictRequest(model_id=model_id, arrow_ipc=ipc(features))
        body = {"rows": features.to_pylist()}
        predict = ps_grpc.PredictionServiceStub(channel).Predict
        with httpx.Client(base_url=gateway_url, timeout=30) as http:
            url = f"/v1/models/{model_id}/predict"
            direct_ns: list[int] = []
            gateway_ns: list[int] = []
            for i in range(warmup + calls):
                started = time.perf_counter_ns()
                predict(request, timeout=10)
                middle = time.perf_counter_ns()
                response = http.post(url, json=body)
                ended = time.perf_counter_ns()
                response.raise_for_status()
                if i >= warmup:
                    direct_ns.append(middle - started)
                    gateway_ns.append(ended - middle)
    direct, gateway = percentiles(direct_ns), percentiles(gateway_ns)
    added = round(gateway["p50_ms"] - direct["p50_ms"], 3)
    return {
        "benchmark": "gateway",
        "calls": calls,
        "grpc": direct,
        "gateway": gateway,
        "added_p50_ms": added,
        "ratio_p50": round(gateway["p50_ms"] / direct["p50_ms"], 2),
        "target_added_p50_ms": TARGET_MS,
        "meets_target": added <= TARGET_MS,
        "http_parser": http_parser(),
        # Client, gateway and service share the machine's cores; say how busy it was.
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> None:
    """Parse arguments, bring up what is missing, measure, and report."""
    parser = argparse.ArgumentParser(prog="python -m bench gateway", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls of each kind")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first")
    parser.add_argument("--grpc-target", help="use this running service instead of starting one")
    parser.add_argument("--gateway-url", help="use this running gateway instead of starting one")
    parser.add_argument("--model-id", help="predict with this penguins model instead of training")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gateway-")))
        target = args.grpc_target
        if target is None:
            port = free_port()
            target = f"127.0.0.1:{port}"
            service = ["-m", "ml_service", "--port", str(port), "--data-dir", str(work / "store")]
            stack.enter_context(process([*service, "--log-level", "WARNING"], work / "service.log"))
            health = health_pb2_grpc.HealthStub(stack.enter_context(grpc.insecure_channel(target)))
            readiness = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
            wait_until(
                lambda: (
                    health.Check(readiness, timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ),
                "the gRPC service",
            )
        url = args.gateway_url
        if url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            gateway = ["-m", "rest_gateway", "--port", str(port), "--grpc-target", target]
            stack.enter_context(process([*gateway, "--log-level", "warning"], work / "gateway.log"))
            wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, "the gateway")
        result = measure(target, url, args.model_id, args.calls, args.warmup)
    for name in ("grpc", "gateway"):
        figures = result[name]
        print(f"{name:8} p50 {figures['p50_ms']:7.3f} ms   p99 {figures['p99_ms']:7.3f} ms")
    print(
        f"gateway adds {result['added_p50_ms']:.3f} ms at p50 (x{result['ratio_p50']}),"
        f" HTTP parser {result['http_parser']}, load {result['load_1m']} on {result['cpus']} CPUs"
    )
    print(json.dumps(result))
