"""Soak test: several loopback clients mix train, predict, stream and delete for N minutes.

`python -m bench soak [--minutes 10] [--clients 4]` starts the service as a subprocess and
reports unexpected errors (target 0), latency percentiles per operation and the server's
RSS over time; the last line is a JSON object. Runs on demand, never in CI.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.csv as pacsv
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb

from bench.harness import DATA_DIR, free_port, percentiles, process, rss_bytes, wait_until
from mlops_client.ipc import table_chunks, to_ipc

# Refusals a healthy server gives under this load; anything else is unexpected.
EXPECTED = {grpc.StatusCode.RESOURCE_EXHAUSTED}


class Stats:
    """Latencies and errors per operation, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency_ns: dict[str, list[int]] = defaultdict(list)
        self.expected: dict[str, int] = defaultdict(int)
        self.unexpected: list[str] = []

    def run(self, name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Time `call(*args, **kwargs)`, counting a gRPC error as expected or not."""
        started = time.perf_counter_ns()
        try:
            result = call(*args, **kwargs)
        except grpc.RpcError as exc:
            with self.lock:
                if exc.code() in EXPECTED:
                    self.expected[f"{name}:{exc.code().name}"] += 1
                else:
                    self.unexpected.append(f"{name}: {exc.code().name}: {exc.details()}")
            return None
        with self.lock:
            self.latency_ns[name].append(time.perf_counter_ns() - started)
        return result


def watch_all(training: Any, request: ts.WatchTrainingJobRequest) -> list[Any]:
    """Follow a job to its end."""
    return list(training.WatchTrainingJob(request, timeout=300))


def stream_all(predict: Any, requests: Any) -> list[Any]:
    """Run one StreamPredict to its end."""
    return list(predict.StreamPredict(requests, timeout=60))


def client_loop(target: str, table: pa.Table, stats: Stats, seed: int, until: float) -> None:
    """One client: keeps its own models and works on them at random."""
    rng = random.Random(seed)
    rows = table.drop_columns(["species"])
    with grpc.insecure_channel(target) as channel:
        training = ts_grpc.TrainingServiceStub(channel)
        models = ms_grpc.ModelServiceStub(channel)
        predict = ps_grpc.PredictionServiceStub(channel)
        mine: list[str] = []
        while time.monotonic() < until:
            op = rng.choices(["train", "predict", "stream", "retrain", "delete"], [2, 10, 4, 1, 1])[
                0
            ]
            if op == "train" or not mine:
                kind = rng.choice(["catboost", "logistic_regression"])
                spec = pb.TrainingJobSpec(kind=kind, target_column="species")
                if kind == "catboost":
                    spec.hyperparameters.update({"iterations": rng.randint(10, 80)})
                messages = [ts.CreateTrainingJobRequest(spec=spec)]
                messages += [
                    ts.CreateTrainingJobRequest(arrow_chunk=c) for c in table_chunks(table)
                ]
                job = stats.run("train", training.CreateTrainingJob, iter(messages), timeout=60)
                if job is None:
                    continue
                watch = ts.WatchTrainingJobRequest(job_id=job.job.job_id)
                final = stats.run("watch", watch_all, training, watch)
                if final and final[-1].job.state == pb.JOB_STATE_SUCCEEDED:
                    mine.append(final[-1].job.model_id)
                elif final:
                    stats.unexpected.append(f"job ended {pb.JobState.Name(final[-1].job.state)}")
            elif op == "predict":
                n = rng.choice([1, 1, 1, 10, 300])
                request = ps.PredictRequest(
                    model_id=rng.choice(mine), arrow_ipc=to_ipc(rows.slice(0, n))
                )
                stats.run(f"predict_{n}_rows", predict.Predict, request, timeout=30)
            elif op == "stream":
                model_id = rng.choice(mine)
                batches = [to_ipc(rows)] * rng.randint(1, 20)
                requests = (
                    ps.StreamPredictRequest(model_id=model_id, arrow_ipc=b) for b in batches
                )
                stats.run("stream", stream_all, predict, requests)
            elif op == "retrain":
                spec = pb.RetrainSpec(model_id=rng.choice(mine))
                job = stats.run(
                    "retrain",
                    training.RetrainModel,
                    iter([ts.RetrainModelRequest(spec=spec)]),
                    timeout=60,
                )
                if job is not None:
                    watch = ts.WatchTrainingJobRequest(job_id=job.job.job_id)
                    stats.run("watch", watch_all, training, watch)
            else:
                model_id = mine.pop(rng.randrange(len(mine)))
                stats.run(
                    "delete",
                    models.DeleteModel,
                    ms.DeleteModelRequest(model_id=model_id),
                    timeout=30,
                )


def main(argv: list[str]) -> None:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    table = pacsv.read_csv(DATA_DIR / "penguins.csv", convert_options=options)
    stats = Stats()
    port = free_port()
    rss: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        command = ["-m", "ml_service", "--port", str(port), "--data-dir", f"{tmp}/store",
                   "--max-concurrent-trainings", "2"]  # fmt: skip
        with process(command, Path(tmp) / "server.log") as server:
            target = f"127.0.0.1:{port}"
            with grpc.insecure_channel(target) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                ready = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
                wait_until(lambda: health.Check(ready, timeout=1).status == 1, "ml_service")
            started = time.monotonic()
            until = started + args.minutes * 60
            threads = [
                threading.Thread(target=client_loop, args=(target, table, stats, seed, until))
                for seed in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                rss.append(
                    (round(time.monotonic() - started), round(rss_bytes(server.pid) / 2**20, 1))
                )
                time.sleep(min(10.0, args.minutes * 6))
            alive = server.poll() is None
    result = {
        "benchmark": "soak",
        "minutes": args.minutes,
        "clients": args.clients,
        "server_survived": alive,
        "unexpected_errors": len(stats.unexpected),
        "unexpected_samples": stats.unexpected[:10],
        "expected_refusals": dict(stats.expected),
        "operations": {
            name: {"count": len(samples), **percentiles(samples)}
            for name, samples in sorted(stats.latency_ns.items())
            if len(samples) > 1
        },
        "server_rss_mb_over_time": rss,
    }
    for name, figures in result["operations"].items():
        print(f"{name:>20}: {figures}")
    print(f"unexpected errors: {result['unexpected_errors']}; RSS (s, MB): {rss}")
    print(json.dumps(result))
