"""SIGKILL the server at random moments while it trains, commits and deletes; lose nothing.

Each seed restarts the real server process on the same store, checks that every listed
version loads, predicts and matches its hash, then starts random work and kills the server
mid-way. Embedded (SQLite and a directory), it also checks that the sweep left no orphan
files and that SQLite is intact. Shared (PostgreSQL and an S3 bucket, fewer seeds unless
`--shared-crash-seeds N`), it checks that every version row's artifact is in the bucket;
an artifact whose row never landed may stay there, unlisted, since no replica may sweep a
bucket others write to.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import psycopg
import pyarrow as pa
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc

from mlops_client.ipc import from_ipc, to_ipc
from tests.backends import Shared
from tests.ml_service.helpers import Client, read_csv, until
from tests.ml_service.test_shared_mode import objects

SEEDS = 30


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    data_dir: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "ml_service", "--port", str(port), "--data-dir", str(data_dir)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if health.Check(request, timeout=1).status == 1:
                    return proc, target
            except grpc.RpcError:
                time.sleep(0.1)
    raise AssertionError("server did not become ready: " + log.read_text()[-2000:])


def stored_files(data_dir: Path, folder: str) -> set[str]:
    root = data_dir / folder
    return {str(p.relative_to(data_dir)) for p in root.rglob("*") if p.is_file()}


def check_embedded_files(data_dir: Path) -> None:
    """SQLite is intact and the files on disk match the rows exactly."""
    with sqlite3.connect(data_dir / "metadata.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        artifacts = {k for (k,) in db.execute("SELECT artifact_key FROM versions")}
    assert stored_files(data_dir, "artifacts") == artifacts
    assert stored_files(data_dir, "tmp") == set()


def check_shared_files(shared: Shared, data_dir: Path) -> None:
    """Every version row's artifact is in the bucket; the replica's scratch space empties."""
    with psycopg.connect(shared.database_url) as db:
        artifacts = {k for (k,) in db.execute("SELECT artifact_key FROM versions")}
    assert artifacts <= set(objects(shared, "artifacts"))
    # A job the killed replica had queued outlives it (any replica may claim it): the new one
    # claims it at once and fetches its data here while it trains. What stays is a leak.
    until(lambda: stored_files(data_dir, "tmp") == set(), 60)


def check_store(target: str, rows: pa.Table) -> int:
    """Every listed version predicts; return how many there are."""
    with grpc.insecure_channel(target) as channel:
        client = Client(channel)
        predict = ps_grpc.PredictionServiceStub(channel).Predict
        count = 0
        for model in client.models.ListModels(ms.ListModelsRequest(page_size=1000)).models:
            versions = client.models.ListModelVersions(
                ms.ListModelVersionsRequest(model_id=model.model_id, page_size=1000)
            ).model_versions
            assert len(versions) == model.version_count
            for version in versions:
                answer = predict(
                    ps.PredictRequest(
                        model_id=model.model_id, version=version.version, arrow_ipc=to_ipc(rows)
                    ),
                    timeout=30,
                )
                assert from_ipc(answer.arrow_ipc).num_rows == rows.num_rows
                count += 1
        return count


def random_work(
    target: str, table: pa.Table, rng: random.Random, stop: threading.Event, busy: threading.Event
) -> None:
    """Train, retrain and delete until the server dies under us; `busy` once a job ended."""
    try:
        with grpc.insecure_channel(target) as channel:
            client = Client(channel)
            while not stop.is_set():
                models = client.models.ListModels(ms.ListModelsRequest()).models
                action = rng.choice(["train", "train", "retrain", "delete_version", "delete"])
                if action == "train" or not models:
                    kind = rng.choice(["catboost", "logistic_regression"])
                    params = {"iterations": rng.randint(5, 60)} if kind == "catboost" else {}
                    client.train(table, kind=kind, target_column="species", hyperparameters=params)
                    busy.set()
                    continue
                model = rng.choice(models)
                if action == "retrain":
                    client.watch(client.retrain(model_id=model.model_id).job_id)
                elif action == "delete_version":
                    client.models.DeleteModelVersion(
                        ms.DeleteModelVersionRequest(
                            model_id=model.model_id, version=model.latest_version
                        )
                    )
                else:
                    client.models.DeleteModel(ms.DeleteModelRequest(model_id=model.model_id))
    except grpc.RpcError:
        pass  # the kill, or a conflict with work in flight; both are expected here


def crash_cycles(
    seeds: int,
    restart: Callable[[], tuple[subprocess.Popen[bytes], str]],
    check_files: Callable[[], None],
    table: pa.Table,
) -> None:
    """Run `seeds` cycles of start, check, random work, SIGKILL; then check once more."""
    rows = table.drop_columns(["species"]).slice(0, 3)
    survived = 0
    for seed in range(seeds):
        rng = random.Random(seed)
        proc, target = restart()
        try:
            check_files()
            survived = max(survived, check_store(target, rows))
        except BaseException:
            proc.kill()  # not left running into the tests after this one
            proc.wait(10)
            raise
        stop, busy = threading.Event(), threading.Event()
        worker = threading.Thread(target=random_work, args=(target, table, rng, stop, busy))
        worker.start()
        # The first job of a cycle waits for the forkserver's imports; kill once work flows.
        busy.wait(120)
        time.sleep(rng.uniform(0.0, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        worker.join(60)
        assert not worker.is_alive()
    proc, target = restart()
    try:
        check_files()
        survived = max(survived, check_store(target, rows))
    finally:
        proc.terminate()
        assert proc.wait(60) == 0
    assert survived > 0, "no version survived any cycle: the kills came too early to test"


@pytest.mark.timeout(900)
def test_sigkill_at_random_points_loses_nothing(tmp_path: Path, data_dir_path: Path) -> None:
    data_dir = tmp_path / "store"
    crash_cycles(
        SEEDS,
        lambda: start(data_dir, tmp_path / "server.log"),
        lambda: check_embedded_files(data_dir),
        read_csv(data_dir_path / "penguins.csv"),
    )


@pytest.mark.timeout(900)
def test_sigkill_at_random_points_loses_nothing_on_postgres_and_s3(
    tmp_path: Path, data_dir_path: Path, shared: Shared, request: pytest.FixtureRequest
) -> None:
    data_dir = tmp_path / "scratch"
    env = {
        **shared.s3.env,
        "MLOPS_DATABASE_URL": shared.database_url,
        "MLOPS_ARTIFACT_URI": shared.artifact_uri,
    }
    crash_cycles(
        request.config.getoption("shared_crash_seeds"),
        lambda: start(data_dir, tmp_path / "server.log", env),
        lambda: check_shared_files(shared, data_dir),
        read_csv(data_dir_path / "penguins.csv"),
    )
