"""Two replicas over one PostgreSQL and one bucket act as one service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from ml_service.store.tables import jobs
from tests.backends import Shared, free_port
from tests.conftest import ServiceThread
from tests.ml_service.helpers import Client, until
from tests.ml_service.test_shared_mode import predict

ROOT = Path(__file__).parents[2]
LEASE_SECONDS = 2.0
LONG = {"kind": "catboost", "target_column": "income", "hyperparameters": {"iterations": 10000}}
# Keeps a worker busy for minutes (it is cancelled long before) on a small table.
BUSY = {
    "kind": "catboost",
    "target_column": "species",
    "hyperparameters": {"iterations": 10000, "depth": 10},
}


@pytest.fixture
def replicas(
    start_service: Any, shared: Shared, tmp_path: Path
) -> Iterator[tuple[grpc.Channel, grpc.Channel]]:
    """Channels to replicas A and B, each with its own scratch directory."""
    settings = {
        "database_url": shared.database_url,
        "artifact_uri": shared.artifact_uri,
        "job_lease_seconds": LEASE_SECONDS,
    }
    a: ServiceThread = start_service(tmp_path / "a", **settings)
    b: ServiceThread = start_service(tmp_path / "b", **settings)
    with grpc.insecure_channel(a.target) as to_a, grpc.insecure_channel(b.target) as to_b:
        yield to_a, to_b


def running(client: Client, job_id: str) -> bool:
    job = client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=job_id)).job
    return bool(job.state == pb.JOB_STATE_RUNNING and job.progress.iteration > 0)


def test_train_on_one_replica_watch_predict_cancel_and_delete_through_the_other(
    replicas: tuple[grpc.Channel, grpc.Channel], penguins: pa.Table, adult: pa.Table
) -> None:
    to_a, to_b = replicas
    a, b = Client(to_a), Client(to_b)
    rows = penguins.drop(["species"]).slice(0, 10)

    # Watch through B while A trains: B follows A's persisted progress to the end.
    job = a.create_job(
        penguins, kind="catboost", target_column="species", hyperparameters={"iterations": 600}
    )
    updates = b.watch(job.job_id, timeout=120)
    assert updates[-1].state == pb.JOB_STATE_SUCCEEDED, updates[-1].error.message
    fitted = [u.progress.iteration for u in updates if u.progress.stage == "fitting"]
    assert len(fitted) >= 2 and fitted == sorted(fitted)
    model_id = updates[-1].model_id
    assert updates[-1].result.version == 1

    # Predict through B a model A trained; both now hold it in their caches.
    assert predict(to_b, model_id, rows).num_rows == 10
    assert predict(to_a, model_id, rows).num_rows == 10

    # Cancel through B a job A runs: A's worker stops within about two seconds.
    long = a.create_job(adult, **LONG)
    until(lambda: running(b, long.job_id), 60)
    started = time.monotonic()
    cancelled = b.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=long.job_id))
    assert cancelled.job.state == pb.JOB_STATE_CANCELLED
    assert time.monotonic() - started < 2.5
    stopped_at = a.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=long.job_id))
    time.sleep(1.0)
    later = a.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=long.job_id))
    assert later.job.progress.iteration == stopped_at.job.progress.iteration

    # Delete through B: A refuses predictions of the model within about a second.
    b.models.DeleteModel(ms.DeleteModelRequest(model_id=model_id))

    def refused() -> bool:
        try:
            predict(to_a, model_id, rows)
        except grpc.RpcError as error:
            return bool(error.code() == grpc.StatusCode.NOT_FOUND)
        return False

    assert until(refused, 1.5) < 1.5


def test_a_replica_stops_a_job_another_failed_after_it_stalled_past_the_lease(
    start_service: Any, shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    settings = {
        "database_url": shared.database_url,
        "artifact_uri": shared.artifact_uri,
        "job_lease_seconds": LEASE_SECONDS,
    }
    service: ServiceThread = start_service(tmp_path / "a", **settings)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        busy = client.create_job(penguins, **BUSY)
        until(lambda: running(client, busy.job_id), 60)
        # What another replica writes when this one's lease lapsed while it stalled.
        engine = sa.create_engine(shared.database_url.replace("postgresql:", "postgresql+psycopg:"))
        with engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == busy.job_id)
                .values(
                    state="failed",
                    error_code="ABORTED",
                    error_message="the replica running it stopped",
                    ended_at="2026-01-01T00:00:00+00:00",
                )
            )
        engine.dispose()

        def stopped() -> bool:
            job = client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=busy.job_id))
            return bool(job.job.state == pb.JOB_STATE_FAILED)

        # One renewal round finds the row ended and stops the worker.
        until(stopped, LEASE_SECONDS / 3 + 2)
        request = ts.GetTrainingJobRequest(job_id=busy.job_id)
        assert client.training.GetTrainingJob(request).job.error.message == (
            "the replica running it stopped"
        )
        # The row keeps what the other replica wrote: this one's own end did not land.
        engine = sa.create_engine(shared.database_url.replace("postgresql:", "postgresql+psycopg:"))
        with engine.connect() as conn:
            ended = conn.execute(
                sa.select(jobs.c.ended_at).where(jobs.c.job_id == busy.job_id)
            ).scalar_one()
        engine.dispose()
        assert ended == "2026-01-01T00:00:00+00:00"


def start_process(
    shared: Shared, data_dir: Path, log: Path, *, wait: str = "mlops.v1.readiness"
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m ml_service` on the shared store; return it once `wait` is SERVING."""
    port = free_port()
    env = {
        **os.environ,
        **shared.s3.env,
        "MLOPS_DATABASE_URL": shared.database_url,
        "MLOPS_ARTIFACT_URI": shared.artifact_uri,
        "MLOPS_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    command = [sys.executable, "-m", "ml_service", "--port", str(port), "--data-dir", str(data_dir)]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=wait)

        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                return bool(health.Check(request, timeout=1).status == 1)
            except grpc.RpcError:
                return False

        until(ready, 60)
    return proc, target


def owner(shared: Shared, job_id: str) -> str | None:
    """The replica that claimed a job, as its row names it."""
    engine = sa.create_engine(shared.database_url.replace("postgresql:", "postgresql+psycopg:"))
    try:
        with engine.connect() as conn:
            query = sa.select(jobs.c.owner).where(jobs.c.job_id == job_id)
            return conn.execute(query).scalar_one_or_none()
    finally:
        engine.dispose()


def test_a_job_accepted_by_a_replica_without_a_free_worker_is_run_by_another(
    start_service: Any, shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    settings = {
        "database_url": shared.database_url,
        "artifact_uri": shared.artifact_uri,
        "job_lease_seconds": LEASE_SECONDS,
        "max_concurrent_trainings": 1,
    }
    a_service: ServiceThread = start_service(tmp_path / "a", **settings)
    with grpc.insecure_channel(a_service.target) as to_a:
        a = Client(to_a)
        # Alone, A claims the long job: its one worker is busy from now on.
        long = a.create_job(penguins, **BUSY)
        until(lambda: running(a, long.job_id), 60)
        start_service(tmp_path / "b", **settings)

        short = a.create_job(penguins, kind="logistic_regression", target_column="species")
        done = a.watch(short.job_id, timeout=120)[-1]
        assert done.state == pb.JOB_STATE_SUCCEEDED, done.error.message
        assert done.result.version == 1
        # B ran it while A's worker was still on the long job.
        runner, busy = owner(shared, short.job_id), owner(shared, long.job_id)
        assert runner is not None and busy is not None and runner != busy
        assert running(a, long.job_id)
        # B fetched the data into its scratch space and wrote the artifact there; both went.
        assert list((tmp_path / "b" / "tmp").iterdir()) == []
        assert predict(to_a, done.model_id, penguins.drop(["species"]).slice(0, 3)).num_rows == 3
        cancelled = a.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=long.job_id))
        assert cancelled.job.state == pb.JOB_STATE_CANCELLED


def test_a_replica_killed_mid_training_has_its_job_failed_by_another(
    start_service: Any, shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    proc, target = start_process(shared, tmp_path / "a", tmp_path / "a.log")
    settings = {
        "database_url": shared.database_url,
        "artifact_uri": shared.artifact_uri,
        "job_lease_seconds": LEASE_SECONDS,
    }
    try:
        with grpc.insecure_channel(target) as to_a:
            a = Client(to_a)
            # Alone (one worker), A runs everything: two committed versions, then the job
            # it dies in.
            kept = a.train(penguins, kind="logistic_regression", target_column="species")
            assert kept.state == pb.JOB_STATE_SUCCEEDED, kept.error.message
            again = a.watch(a.retrain(model_id=kept.model_id).job_id)[-1]
            assert again.state == pb.JOB_STATE_SUCCEEDED, again.error.message
            long = a.create_job(penguins, **BUSY)
            until(lambda: running(a, long.job_id), 60)
            # A's one worker is busy: this one waits in the shared queue.
            waiting = a.create_job(penguins, kind="logistic_regression", target_column="species")
        b_service: ServiceThread = start_service(tmp_path / "b", **settings)
        with grpc.insecure_channel(b_service.target) as to_b:
            b = Client(to_b)
            # B sees the row, whose progress A saves every 0.3 s: a moment behind A's own view.
            until(lambda: running(b, long.job_id), 10)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

            def failed() -> bool:
                job = b.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=long.job_id)).job
                return bool(job.state == pb.JOB_STATE_FAILED)

            # The lease, plus one renewal round of B, plus slack for a loaded machine.
            until(failed, LEASE_SECONDS + LEASE_SECONDS / 3 + 2)
            job = b.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=long.job_id)).job
            assert job.error.message == "the replica running it stopped"
            rows = penguins.drop(["species"]).slice(0, 5)
            for version in (1, 2):
                assert predict(to_b, kept.model_id, rows, version).num_rows == 5
            # The job A accepted but never ran does not die with it: B runs it.
            done = b.watch(waiting.job_id, timeout=120)[-1]
            assert done.state == pb.JOB_STATE_SUCCEEDED, done.error.message
            assert predict(to_b, done.model_id, rows).num_rows == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_queue_limit_holds_across_replicas_under_concurrent_submissions(
    start_service: Any, shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    settings = {
        "database_url": shared.database_url,
        "artifact_uri": shared.artifact_uri,
        "max_concurrent_trainings": 1,
        "max_queued_jobs": 3,
    }
    services = [start_service(tmp_path / name, **settings) for name in ("a", "b")]
    channels = [grpc.insecure_channel(s.target) for s in services]
    spec = {
        "kind": "catboost",
        "target_column": "species",
        "hyperparameters": {"iterations": 10000},
    }

    def submit(i: int) -> str:
        try:
            Client(channels[i % 2]).create_job(penguins, **spec)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            assert "queue is full" in (error.details() or "")
            return "refused"
        return "accepted"

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            outcomes = list(pool.map(submit, range(20)))
    finally:
        for channel in channels:
            channel.close()
    # Three may wait in the one shared queue, and each replica's one worker may take one
    # more; alone, each replica would have let four in.
    assert 4 <= outcomes.count("accepted") <= 5, outcomes


def test_a_replica_given_another_replicas_data_directory_refuses_to_start_in_words(
    shared: Shared, tmp_path: Path
) -> None:
    # Replicas on one machine each need scratch space of their own: two sweeping one tmp/
    # would delete each other's uploads in flight.
    first, _ = start_process(shared, tmp_path / "scratch", tmp_path / "a.log")
    try:
        env = {
            **os.environ,
            **shared.s3.env,
            "MLOPS_DATABASE_URL": shared.database_url,
            "MLOPS_ARTIFACT_URI": shared.artifact_uri,
        }
        command = [sys.executable, "-m", "ml_service", "--port", str(free_port()),
                   "--data-dir", str(tmp_path / "scratch")]  # fmt: skip
        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip
    finally:
        first.kill()
        first.wait(10)
    assert second.returncode == 1
    assert "Traceback" not in second.stderr, second.stderr[-2000:]
    last = second.stderr.strip().splitlines()[-1]
    assert last == (
        f"ml_service: data directory {str(tmp_path / 'scratch')!r} is in use by another"
        " process; give each replica a data directory of its own (MLOPS_DATA_DIR)"
    )
