"""Soak test: several loopback clients mix train, predict, stream, cancel, abandon and delete
for N minutes.

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

    def refused(self, name: str, call: Any, *args: Any, **kwargs: Any) -> None:
        """Call what must be refused as INVALID_ARGUMENT; anything else is unexpected."""
        try:
            call(*args, **kwargs)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                with self.lock:
                    self.expected[f"{name}:{exc.code().name}"] += 1
                return
            self.unexpected_event(f"{name}: {exc.code().name}: {exc.details()}")
            return
        self.unexpected_event(f"{name}: accepted")

    def unexpected_event(self, what: str) -> None:
        """Count something a healthy server should not do."""
        with self.lock:
            self.unexpected.append(what)


def watch_all(training: Any, request: ts.WatchTrainingJobRequest) -> list[Any]:
    """Follow a job to its end."""
    return list(training.WatchTrainingJob(request, timeout=300))


def stream_all(predict: Any, requests: Any) -> list[Any]:
    """Run one StreamPredict to its end."""
    return list(predict.StreamPredict(requests, timeout=60))


class Client:
    """One loopback client: keeps its own models and works on them at random."""

    OPERATIONS = {
        "train": 2, "predict": 10, "stream": 4, "retrain": 1, "delete": 1,
        "delete_version": 1, "cancel": 1, "abandon_stream": 1, "abandon_upload": 1,
        "bad_input": 1,
    }  # fmt: skip

    def __init__(self, channel: grpc.Channel, table: pa.Table, stats: Stats, seed: int) -> None:
        self.training = ts_grpc.TrainingServiceStub(channel)
        self.models = ms_grpc.ModelServiceStub(channel)
        self.prediction = ps_grpc.PredictionServiceStub(channel)
        self.table = table
        self.rows = table.drop_columns(["species"])
        self.stats = stats
        self.rng = random.Random(seed)
        # model id -> its versions still stored
        self.mine: dict[str, list[int]] = {}

    def run(self, until: float) -> None:
        """Work until the monotonic clock passes `until`."""
        names, weights = zip(*self.OPERATIONS.items(), strict=True)
        while time.monotonic() < until:
            op = self.rng.choices(names, weights)[0] if self.mine else "train"
            try:
                getattr(self, op)()
            except grpc.RpcError as exc:  # from a call Stats does not time
                self.stats.unexpected_event(f"{op}: {exc.code().name}: {exc.details()}")

    def _upload(self, spec: pb.TrainingJobSpec) -> list[ts.CreateTrainingJobRequest]:
        chunks = table_chunks(self.table)
        return [ts.CreateTrainingJobRequest(spec=spec)] + [
            ts.CreateTrainingJobRequest(arrow_chunk=c) for c in chunks
        ]

    def _follow(self, name: str, job: Any) -> Any:
        """Watch a job to its end; return its last snapshot."""
        final = self.stats.run(name, watch_all, self.training, _watch(job))
        return final[-1].job if final else None

    def train(self) -> None:
        kind = self.rng.choice(["catboost", "logistic_regression"])
        spec = pb.TrainingJobSpec(kind=kind, target_column="species")
        if kind == "catboost":
            spec.hyperparameters.update({"iterations": self.rng.randint(10, 80)})
        job = self.stats.run("train", self.training.CreateTrainingJob, iter(self._upload(spec)))
        final = self._follow("watch", job) if job else None
        if final and final.state == pb.JOB_STATE_SUCCEEDED:
            self.mine[final.model_id] = [final.result.version]
        elif final:
            self.stats.unexpected_event(f"job ended {pb.JobState.Name(final.state)}")

    def predict(self) -> None:
        n = self.rng.choice([1, 1, 1, 10, 300])
        request = ps.PredictRequest(model_id=self._model(), arrow_ipc=to_ipc(self.rows.slice(0, n)))
        self.stats.run(f"predict_{n}_rows", self.prediction.Predict, request, timeout=30)

    def stream(self) -> None:
        model_id = self._model()
        batches = [to_ipc(self.rows)] * self.rng.randint(1, 20)
        requests = (ps.StreamPredictRequest(model_id=model_id, arrow_ipc=b) for b in batches)
        self.stats.run("stream", stream_all, self.prediction, requests)

    def retrain(self) -> None:
        model_id = self._model()
        request = ts.RetrainModelRequest(spec=pb.RetrainSpec(model_id=model_id))
        job = self.stats.run("retrain", self.training.RetrainModel, iter([request]), timeout=60)
        final = self._follow("watch", job) if job else None
        if final and final.state == pb.JOB_STATE_SUCCEEDED and model_id in self.mine:
            self.mine[model_id].append(final.result.version)

    def delete(self) -> None:
        model_id = self._model()
        del self.mine[model_id]
        request = ms.DeleteModelRequest(model_id=model_id)
        self.stats.run("delete", self.models.DeleteModel, request, timeout=30)

    def delete_version(self) -> None:
        model_id = self._model()
        versions = self.mine[model_id]
        version = versions.pop(self.rng.randrange(len(versions)))
        if not versions:
            del self.mine[model_id]  # the last version takes the model with it
        request = ms.DeleteModelVersionRequest(model_id=model_id, version=version)
        self.stats.run("delete_version", self.models.DeleteModelVersion, request, timeout=30)

    def cancel(self) -> None:
        """Start a long training and cancel it once it runs (or while it waits)."""
        spec = pb.TrainingJobSpec(kind="catboost", target_column="species")
        spec.hyperparameters.update({"iterations": 5000})
        job = self.stats.run("train", self.training.CreateTrainingJob, iter(self._upload(spec)))
        if job is None:
            return
        for update in self.training.WatchTrainingJob(_watch(job), timeout=300):
            if update.job.state == pb.JOB_STATE_RUNNING and update.job.progress.iteration:
                break
            if self.rng.random() < 0.2:
                break  # cancel it while it may still be queued
        request = ts.CancelTrainingJobRequest(job_id=job.job.job_id)
        self.stats.run("cancel", self.training.CancelTrainingJob, request, timeout=30)
        final = self._follow("watch_cancelled", job)
        if final and final.state != pb.JOB_STATE_CANCELLED:
            self.stats.unexpected_event(f"cancelled job ended {pb.JobState.Name(final.state)}")

    def abandon_stream(self) -> None:
        """Read the first answer of a long stream, then walk away."""
        model_id = self._model()
        requests = (
            ps.StreamPredictRequest(model_id=model_id, arrow_ipc=to_ipc(self.rows))
            for _ in range(1000)
        )
        call = self.prediction.StreamPredict(requests, timeout=60)
        self.stats.run("abandon_stream", next, call)
        call.cancel()

    def abandon_upload(self) -> None:
        """Send the spec and part of the data, then cancel the upload."""
        spec = pb.TrainingJobSpec(kind="logistic_regression", target_column="species")
        first, *rest = self._upload(spec)
        stalled, released = threading.Event(), threading.Event()

        def pieces() -> Any:
            yield first
            yield from rest[: len(rest) // 2]
            stalled.set()
            released.wait(30)

        future = self.training.CreateTrainingJob.future(pieces(), timeout=60)
        stalled.wait(10)
        time.sleep(0.2)
        future.cancel()
        released.set()

    def bad_input(self) -> None:
        """A wrong column, or a hyperparameter out of bounds: INVALID_ARGUMENT, nothing kept."""
        if self.rng.random() < 0.5:
            wrong = self.rows.rename_columns([f"{n}_x" for n in self.rows.column_names])
            request = ps.PredictRequest(model_id=self._model(), arrow_ipc=to_ipc(wrong.slice(0, 1)))
            self.stats.refused("bad_predict", self.prediction.Predict, request, timeout=30)
        else:
            spec = pb.TrainingJobSpec(kind="catboost", target_column="species")
            spec.hyperparameters.update({"iterations": -1})
            upload = iter(self._upload(spec))
            self.stats.refused("bad_train", self.training.CreateTrainingJob, upload, timeout=60)

    def _model(self) -> str:
        return self.rng.choice(list(self.mine))


def _watch(job: Any) -> ts.WatchTrainingJobRequest:
    return ts.WatchTrainingJobRequest(job_id=job.job.job_id)


def client_loop(target: str, table: pa.Table, stats: Stats, seed: int, until: float) -> None:
    """One client on its own channel until `until`."""
    with grpc.insecure_channel(target) as channel:
        Client(channel, table, stats, seed).run(until)


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
