"""V2 ModelInfer (tritonclient.grpc) against mlops.v1 Predict on the same model, one run.

`python -m bench v2 [--quick]` starts `python -m ml_service` on a loopback port, trains
CatBoost on adult.csv, then measures on the same rows: single-row latency p50/p99 over
N calls, and batch throughput for 10,000-row calls (median of repeats). Requests are built
before the clock starts for both protocols; tritonclient's own request packing is timed.
Targets (issue 14): V2 single-row p50 within 0.3 ms of Predict; V2 batch throughput at
least 0.8x Predict's. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc

from bench.harness import free_port, percentiles, process, wait_until
from bench.predict import TARGET, load_adult, repeat_table, train
from mlops_client.ipc import to_ipc

P50_GOAL_MS = 0.3
BATCH_GOAL = 0.8


def user_rows(features: pa.Table) -> pa.Table:
    """The rows both protocols get: text gaps become "" (V2 BYTES has no missing value)."""
    for index, field in enumerate(features.schema):
        if pa.types.is_string(field.type):
            features = features.set_column(index, field.name, pc.fill_null(features[index], ""))
    return features


def triton_inputs(rows: pa.Table) -> list[triton.InferInput]:
    """One tensor per column, as a tritonclient user builds them from numpy."""
    inputs = []
    for field in rows.schema:
        column = rows[field.name]
        if pa.types.is_string(field.type):
            values = np.array([v.encode() for v in column.to_pylist()], dtype=np.object_)
            datatype = "BYTES"
        elif pa.types.is_integer(field.type) and column.null_count == 0:
            values, datatype = column.to_numpy().astype(np.int64), "INT64"
        else:
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            datatype = "FP64"
        tensor = triton.InferInput(field.name, [rows.num_rows], datatype)
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def timed(call: Any, requests: list[Any]) -> list[int]:
    """Nanoseconds per call, after a warm-up of a tenth of the calls."""
    for request in requests[: max(1, len(requests) // 10)]:
        call(request)
    samples = []
    for request in requests:
        started = time.perf_counter_ns()
        call(request)
        samples.append(time.perf_counter_ns() - started)
    return samples


def main(argv: list[str]) -> None:
    """Run the comparison and print a table and one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench v2")
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args(argv)
    calls, repeats, batch_rows = (300, 3, 10_000) if args.quick else (2000, 7, 10_000)
    table, _ = load_adult()
    features = user_rows(table.drop_columns([TARGET]))
    batch = repeat_table(features, batch_rows)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        command = ["-m", "ml_service", "--port", str(port), "--data-dir", str(Path(tmp) / "s")]
        with process(command, Path(tmp) / "server.log"):
            target = f"127.0.0.1:{port}"
            options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
            with grpc.insecure_channel(target, options=options) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                ready = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
                wait_until(lambda: health.Check(ready, timeout=1).status == 1, "ml_service", 120)
                model_id = train(channel, table, "catboost").model_id
                stub = ps_grpc.PredictionServiceStub(channel)
                client = triton.InferenceServerClient(target)
                ones = [features.slice(i % 1000, 1) for i in range(calls)]
                v1_one = [ps.PredictRequest(model_id=model_id, arrow_ipc=to_ipc(r)) for r in ones]
                v2_one = [triton_inputs(r) for r in ones]

                def predict(request: Any) -> None:
                    stub.Predict(request, timeout=30)

                def infer(inputs: Any) -> None:
                    client.infer(model_id, inputs, client_timeout=30)

                v1_latency = percentiles(timed(predict, v1_one))
                v2_latency = percentiles(timed(infer, v2_one))
                v1_batch = ps.PredictRequest(model_id=model_id, arrow_ipc=to_ipc(batch))
                v2_batch = triton_inputs(batch)
                v1_s = statistics.median(t / 1e9 for t in timed(predict, [v1_batch] * repeats))
                v2_s = statistics.median(t / 1e9 for t in timed(infer, [v2_batch] * repeats))
                client.close()
    results = {
        "benchmark": "v2",
        "model": "catboost on adult.csv",
        "single_row_calls": calls,
        "batch_rows": batch_rows,
        "repeats": repeats,
        "v1_single_row": v1_latency,
        "v2_single_row": v2_latency,
        "p50_difference_ms": round(v2_latency["p50_ms"] - v1_latency["p50_ms"], 3),
        "v1_batch_rows_per_s": round(batch_rows / v1_s),
        "v2_batch_rows_per_s": round(batch_rows / v2_s),
        "batch_ratio": round(v1_s / v2_s, 2),
    }
    results["meets_p50_goal"] = results["p50_difference_ms"] <= P50_GOAL_MS
    results["meets_batch_goal"] = results["batch_ratio"] >= BATCH_GOAL
    print(f"{'':24}{'mlops.v1 Predict':>20}{'V2 ModelInfer':>20}")
    for label, key in (("single-row p50 ms", "p50_ms"), ("single-row p99 ms", "p99_ms")):
        print(f"{label:24}{v1_latency[key]:>20}{v2_latency[key]:>20}")
    row = ("10k-row batch rows/s", results["v1_batch_rows_per_s"], results["v2_batch_rows_per_s"])
    print(f"{row[0]:24}{row[1]:>20,}{row[2]:>20,}")
    print(
        f"p50 difference {results['p50_difference_ms']} ms (goal <= {P50_GOAL_MS}); "
        f"batch ratio {results['batch_ratio']}x (goal >= {BATCH_GOAL})"
    )
    print(json.dumps(results))
    sys.stdout.flush()
