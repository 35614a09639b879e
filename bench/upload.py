"""Upload a large training table (200 MB of Arrow by default) and train on it.

`python -m bench upload [--megabytes 200] [--kind catboost]` starts the service as a
subprocess, streams adult.csv rows repeated up to the size, and reports the upload and
training times and the server's peak RSS; the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
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
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb

from bench.harness import DATA_DIR, RssSampler, free_port, process, wait_until
from mlops_client.ipc import table_chunks


def big_table(megabytes: int) -> pa.Table:
    """adult.csv rows repeated until the table holds about `megabytes` of Arrow data."""
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    adult = pacsv.read_csv(DATA_DIR / "adult.csv", convert_options=options)
    copies = max(1, round(megabytes * 2**20 / adult.nbytes))
    return pa.concat_tables([adult] * copies)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Upload, train, and return the figures."""
    table = big_table(args.megabytes)
    params = struct_pb2.Struct()
    params.update({"iterations": args.iterations} if args.kind == "catboost" else {"max_iter": 50})
    spec = pb.TrainingJobSpec(kind=args.kind, target_column="income", hyperparameters=params)

    def messages() -> Iterator[ts.CreateTrainingJobRequest]:
        yield ts.CreateTrainingJobRequest(spec=spec)
        for piece in table_chunks(table):
            yield ts.CreateTrainingJobRequest(arrow_chunk=piece)

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        command = ["-m", "ml_service", "--port", str(port), "--data-dir", f"{tmp}/store"]
        with (
            process(command, Path(tmp) / "server.log") as server,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            health = health_pb2_grpc.HealthStub(channel)
            ready = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
            wait_until(lambda: health.Check(ready, timeout=1).status == 1, "ml_service")
            training = ts_grpc.TrainingServiceStub(channel)
            with RssSampler(server.pid) as sampler:
                started = time.perf_counter()
                job = training.CreateTrainingJob(messages(), timeout=1800).job
                uploaded = time.perf_counter()
                watch = ts.WatchTrainingJobRequest(job_id=job.job_id)
                final = list(training.WatchTrainingJob(watch, timeout=3600))[-1].job
                ended = time.perf_counter()
    return {
        "benchmark": "upload",
        "kind": args.kind,
        "arrow_megabytes": round(table.nbytes / 2**20, 1),
        "rows": table.num_rows,
        "state": pb.JobState.Name(final.state),
        "error": final.error.message,
        "upload_seconds": round(uploaded - started, 2),
        "train_seconds": round(ended - uploaded, 2),
        "holdout_accuracy": round(final.result.metrics.accuracy, 4),
        "server_peak_rss_mb": round(sampler.peak / 2**20, 1),
    }


def main(argv: list[str]) -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench upload", description=__doc__)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--kind", default="catboost", choices=["catboost", "logistic_regression"])
    parser.add_argument("--iterations", type=int, default=20)
    result = run(parser.parse_args(argv))
    for key, value in result.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(result))
