"""Training on a real Ray cluster (a local head on loopback) through the service.

The store is embedded metadata over an S3 bucket (moto), so every Ray actor reads its data
from the object store and writes its artifact there, as it would on a remote cluster.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from tests.backends import S3, Shared, free_port
from tests.conftest import ServiceThread
from tests.ml_service.helpers import Client
from tests.ml_service.test_replicas import until
from tests.ml_service.test_shared_mode import predict
from tests.ray_cluster import RayHead, head_process

ROOT = Path(__file__).parents[2]
NAMESPACE = "mlops"
LONG = {"kind": "catboost", "target_column": "income", "hyperparameters": {"iterations": 10000}}


def ray_module(head: RayHead) -> Any:
    """This process's connection to the test cluster (the in-process service may own it)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=head.address, namespace=NAMESPACE, log_to_driver=False)
    return ray


def actor_alive(head: RayHead, job_id: str) -> bool:
    """Tell whether the job's training actor exists on the cluster."""
    ray = ray_module(head)
    try:
        actor = ray.get_actor(f"mlops-job-{job_id}", namespace=NAMESPACE)
        ray.get(actor.pid.remote(), timeout=5)
    except (ValueError, ray.exceptions.RayError):
        return False
    except AssertionError:
        # While Ray cleans up after a driver that died, the actor's name can still resolve
        # when its class is already gone, and get_actor asserts: not gone yet, ask again.
        return True
    return True


def actor_pid(head: RayHead, job_id: str) -> int:
    """Return the process id of the job's training actor."""
    ray = ray_module(head)
    actor = ray.get_actor(f"mlops-job-{job_id}", namespace=NAMESPACE)
    return int(ray.get(actor.pid.remote(), timeout=10))


def assigned_resources(head: RayHead, job_id: str) -> dict[str, float]:
    """Return what Ray reserved for the job's training actor, as the actor itself sees it."""
    ray = ray_module(head)
    actor = ray.get_actor(f"mlops-job-{job_id}", namespace=NAMESPACE)
    return dict(ray.get(actor.assigned_resources.remote(), timeout=10))


def fitting(client: Client, job_id: str) -> bool:
    """Tell whether a job is running and past its first iteration."""
    job = client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=job_id)).job
    assert job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING), job.error.message
    return bool(job.state == pb.JOB_STATE_RUNNING and job.progress.iteration > 0)


def job_of(client: Client, job_id: str) -> pb.TrainingJob:
    """Return a job as the service reports it now."""
    return client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=job_id)).job


@pytest.fixture
def bucket_uri(s3_server: S3, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket's artifact URI; the AWS variables point this process at it."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.create_bucket()}/mlops"


@pytest.fixture
def ray_service(start_service: Any, ray_head: RayHead, bucket_uri: str) -> ServiceThread:
    """An in-process service whose jobs run as Ray actors."""
    service: ServiceThread = start_service(
        training_executor="ray", ray_address=ray_head.address, artifact_uri=bucket_uri
    )
    return service


def test_both_kinds_train_on_ray_with_live_progress_and_their_artifacts_in_the_bucket(
    ray_service: ServiceThread,
    ray_head: RayHead,
    s3_server: S3,
    bucket_uri: str,
    penguins: pa.Table,
) -> None:
    rows = penguins.drop(["species"]).slice(0, 10)
    with grpc.insecure_channel(ray_service.target) as channel:
        client = Client(channel)
        job = client.create_job(
            penguins, kind="catboost", target_column="species", hyperparameters={"iterations": 300}
        )
        # Both at once: the head's 2 CPUs hold two actors of 1 CPU each.
        other = client.create_job(penguins, kind="logistic_regression", target_column="species")
        seen_actor = False
        updates: list[pb.TrainingJob] = []
        request = ts.WatchTrainingJobRequest(job_id=job.job_id)
        for update in client.training.WatchTrainingJob(request, timeout=120):
            updates.append(update.job)
            if update.job.progress.iteration > 0 and not seen_actor:
                # The fit runs in the job's actor on the cluster, not in this process.
                seen_actor = actor_alive(ray_head, job.job_id)
                assert actor_pid(ray_head, job.job_id) != os.getpid()
        final = updates[-1]
        assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
        assert seen_actor
        iterations = [u.progress.iteration for u in updates if u.progress.stage == "fitting"]
        assert len(iterations) >= 2 and iterations == sorted(iterations)
        assert predict(channel, final.model_id, rows).num_rows == 10

        logistic = client.watch(other.job_id)[-1]
        assert logistic.state == pb.JOB_STATE_SUCCEEDED, logistic.error.message
        assert predict(channel, logistic.model_id, rows).num_rows == 10

    # Each version's artifact is in the bucket; nothing is left in the staging area, and
    # the actors are gone (their CPUs are free again).
    base = bucket_uri.removeprefix("s3://")
    selector = pafs.FileSelector(f"{base}/artifacts", recursive=True, allow_not_found=True)
    keys = [i.path for i in s3_server.filesystem().get_file_info(selector) if i.size]
    assert len(keys) == 2 and not [k for k in keys if ".staging" in k], keys
    assert not actor_alive(ray_head, job.job_id)


def test_a_job_gets_the_resources_it_asked_for_and_cancel_kills_its_actor_at_once(
    ray_service: ServiceThread, ray_head: RayHead, adult: pa.Table
) -> None:
    with grpc.insecure_channel(ray_service.target) as channel:
        client = Client(channel)
        # More than the service's default of 1 CPU: the head's 2 CPUs, and some memory.
        resources = pb.TrainingResources(cpus=2, memory_mb=300)
        job = client.create_job(adult, resources=resources, **LONG)
        until(lambda: fitting(client, job.job_id), 90)
        assert assigned_resources(ray_head, job.job_id) == {"CPU": 2.0, "memory": 300 * 2**20}
        cancelled = client.training.CancelTrainingJob(
            ts.CancelTrainingJobRequest(job_id=job.job_id), timeout=10
        ).job
        assert cancelled.state == pb.JOB_STATE_CANCELLED
        until(lambda: not actor_alive(ray_head, job.job_id), 2.5)
        assert job_of(client, job.job_id).state == pb.JOB_STATE_CANCELLED


def test_a_killed_ray_worker_fails_its_job_with_a_clear_reason(
    ray_service: ServiceThread, ray_head: RayHead, adult: pa.Table
) -> None:
    with grpc.insecure_channel(ray_service.target) as channel:
        client = Client(channel)
        job = client.create_job(adult, **LONG)
        until(lambda: fitting(client, job.job_id), 90)
        os.kill(actor_pid(ray_head, job.job_id), signal.SIGKILL)
        until(lambda: job_of(client, job.job_id).state == pb.JOB_STATE_FAILED, 15)
        error = job_of(client, job.job_id).error
        assert error.message == (
            "the Ray worker running it was lost (its process was killed or its node went away)"
        )


def test_a_job_no_ray_node_has_room_for_fails_saying_so(
    start_service: Any, ray_head: RayHead, bucket_uri: str, penguins: pa.Table
) -> None:
    service: ServiceThread = start_service(
        training_executor="ray",
        ray_address=ray_head.address,
        artifact_uri=bucket_uri,
        ray_cpus=64,
        ray_start_timeout_seconds=1,
    )
    with grpc.insecure_channel(service.target) as channel:
        job = Client(channel).train(penguins, kind="catboost", target_column="species")
    assert job.state == pb.JOB_STATE_FAILED
    assert job.error.message == "no Ray node had room for 64 CPUs within 1 s"


def start_process(
    head: RayHead, s3: S3, bucket_uri: str, data_dir: Path, address: str = ""
) -> tuple[Any, str]:
    """Start `python -m ml_service` with the Ray executor; return it once it is ready."""
    port = free_port()
    env = {
        **head.env,
        **s3.env,
        "MLOPS_TRAINING_EXECUTOR": "ray",
        "MLOPS_RAY_ADDRESS": address or head.address,
        "MLOPS_ARTIFACT_URI": bucket_uri,
    }
    if address == "auto":
        env["RAY_ADDRESS"] = head.address  # as KubeRay's pods have it
    command = [sys.executable, "-m", "ml_service", "--port", str(port), "--data-dir", str(data_dir)]
    log = data_dir.parent / f"service-{port}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    with grpc.insecure_channel(target) as channel:
        client = Client(channel)

        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                client.training.ListTrainingJobs(ts.ListTrainingJobsRequest(), timeout=1)
            except grpc.RpcError:
                return False
            return True

        until(ready, 90)
    return proc, target


def test_a_service_killed_mid_job_takes_its_actor_along_and_the_restart_fails_the_job(
    ray_head: RayHead, s3_server: S3, bucket_uri: str, tmp_path: Path, adult: pa.Table
) -> None:
    data_dir = tmp_path / "store"
    # "auto", the setting's default: the head Ray finds is the one the service watches.
    proc, target = start_process(ray_head, s3_server, bucket_uri, data_dir, "auto")
    again = None
    try:
        with grpc.insecure_channel(target) as channel:
            client = Client(channel)
            job = client.create_job(adult, **LONG)
            until(lambda: fitting(client, job.job_id), 90)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # Ray kills the actors of a driver that died: no training goes on for nobody.
        until(lambda: not actor_alive(ray_head, job.job_id), 15)
        again, target = start_process(ray_head, s3_server, bucket_uri, data_dir)
        with grpc.insecure_channel(target) as channel:
            failed = job_of(Client(channel), job.job_id)
        assert failed.state == pb.JOB_STATE_FAILED
        assert failed.error.message == "interrupted by a server restart"
        # Ray's driver logged in a plain-text shape of its own among the service's JSON, and
        # warned of a SIGTERM handler the service does not need from it.
        logged = "".join(log.read_text() for log in tmp_path.glob("service-*.log"))
        assert f"training on the Ray cluster at auto (head {ray_head.address})" in logged
        assert "SIGTERM handler is not set" not in logged
        assert not re.search(r"\t(?:DEBUG|INFO|WARNING|ERROR) \w+\.py:\d+ -- ", logged), logged
    finally:
        for each in (proc, again):
            if each is not None and each.poll() is None:
                each.kill()
                each.wait(10)


def test_a_service_outlives_its_ray_head_and_says_the_cluster_went_away(
    s3_server: S3, bucket_uri: str, tmp_path: Path, penguins: pa.Table
) -> None:
    # A head of its own, killed with all its processes as when its machine dies.
    with head_process(s3_server) as (head, head_proc):
        proc, target = start_process(head, s3_server, bucket_uri, tmp_path / "store")
        try:
            with grpc.insecure_channel(target) as channel:
                client = Client(channel)
                os.killpg(head_proc.pid, signal.SIGKILL)
                killed = time.monotonic()
                spec: dict[str, Any] = {"kind": "catboost", "target_column": "species"}
                # At once, not after Ray's 60 s wait for the head (on the event loop) and
                # not as "internal error".
                first = client.watch(client.create_job(penguins, **spec).job_id, timeout=20)[-1]
                assert first.state == pb.JOB_STATE_FAILED
                assert first.error.message == f"the Ray cluster at {head.address} does not answer"
                time.sleep(11)  # past the grace a blip gets
                second = client.watch(client.create_job(penguins, **spec).job_id, timeout=20)[-1]
                assert second.error.message == (
                    f"the Ray cluster at {head.address} went away (its head stopped "
                    "answering); the service trains on Ray again once restarted with the head back"
                )
                # Ray ends a driver whose head is away for 60 s; the service lives on.
                time.sleep(max(0.0, 65 - (time.monotonic() - killed)))
                assert proc.poll() is None
                listed = client.training.ListTrainingJobs(ts.ListTrainingJobsRequest(), timeout=5)
                assert len(listed.jobs) == 2
        finally:
            proc.kill()
            proc.wait(10)


def test_a_ray_client_job_whose_head_dies_fails_saying_the_cluster_went_away(
    s3_server: S3, bucket_uri: str, tmp_path: Path, adult: pa.Table
) -> None:
    with head_process(s3_server) as (head, head_proc):
        address = head.client_address
        proc, target = start_process(head, s3_server, bucket_uri, tmp_path / "store", address)
        try:
            with grpc.insecure_channel(target) as channel:
                client = Client(channel)
                job = client.create_job(adult, **LONG)
                until(lambda: fitting(client, job.job_id), 90)
                os.killpg(head_proc.pid, signal.SIGKILL)
                # Through ray:// every call then raises ConnectionError (was "internal error").
                until(lambda: job_of(client, job.job_id).state == pb.JOB_STATE_FAILED, 45)
                assert job_of(client, job.job_id).error.message == (
                    f"the Ray cluster at {address} went away (its head stopped "
                    "answering); the service trains on Ray again once restarted with the head back"
                )
        finally:
            proc.kill()
            proc.wait(10)


def test_a_service_trains_through_ray_client_as_it_would_from_another_machine(
    ray_head: RayHead, s3_server: S3, bucket_uri: str, tmp_path: Path, penguins: pa.Table
) -> None:
    proc, target = start_process(
        ray_head, s3_server, bucket_uri, tmp_path / "store", ray_head.client_address
    )
    try:
        with grpc.insecure_channel(target) as channel:
            client = Client(channel)
            job = client.create_job(
                penguins,
                kind="catboost",
                target_column="species",
                hyperparameters={"iterations": 300},
            )
            updates = client.watch(job.job_id, timeout=120)
            assert updates[-1].state == pb.JOB_STATE_SUCCEEDED, updates[-1].error.message
            assert any(u.progress.iteration > 0 for u in updates)
            rows = penguins.drop(["species"]).slice(0, 5)
            assert predict(channel, updates[-1].model_id, rows).num_rows == 5
    finally:
        proc.kill()
        proc.wait(10)


def test_the_local_executor_never_imports_ray(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from ml_service import executors\n"
        "from ml_service.config import Settings\n"
        "from ml_service.core import ModelServiceCore\n"
        "from ml_service.store import Store\n"
        f"settings = Settings(data_dir={str(tmp_path)!r})\n"
        "with Store.open(settings.data_dir) as store:\n"
        "    executor = executors.build(settings, store)\n"
        "assert executor.name == 'local', executor.name\n"
        "sys.exit(3 if 'ray' in sys.modules else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"MLOPS_TRAINING_EXECUTOR": "rya"}, "MLOPS_TRAINING_EXECUTOR"),
        (
            {"MLOPS_TRAINING_EXECUTOR": "ray", "MLOPS_RAY_ADDRESS": "127.0.0.1:{port}"},
            "MLOPS_RAY_ADDRESS",
        ),
    ],
    ids=["unknown-executor", "unreachable-cluster"],
)
def test_the_service_refuses_to_start_with_a_bad_executor_setting(
    tmp_path: Path, variables: dict[str, str], named: str
) -> None:
    port = free_port()  # nothing listens there
    env = {**os.environ, **{k: v.format(port=port) for k, v in variables.items()}}
    command = [sys.executable, "-m", "ml_service", "--port", "0", "--data-dir", str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ml_service: ") and named in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_in_shared_mode_another_replica_watches_a_ray_job_and_predicts_its_version(
    start_service: Any, ray_head: RayHead, shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    settings = {"database_url": shared.database_url, "artifact_uri": shared.artifact_uri}
    on_ray: ServiceThread = start_service(
        tmp_path / "a", training_executor="ray", ray_address=ray_head.address, **settings
    )
    local: ServiceThread = start_service(tmp_path / "b", **settings)
    with (
        grpc.insecure_channel(on_ray.target) as to_ray,
        grpc.insecure_channel(local.target) as to_local,
    ):
        job = Client(to_ray).create_job(
            penguins, kind="catboost", target_column="species", hyperparameters={"iterations": 300}
        )
        # Progress travels through the database to the other replica's watchers.
        updates = Client(to_local).watch(job.job_id, timeout=120)
        assert updates[-1].state == pb.JOB_STATE_SUCCEEDED, updates[-1].error.message
        assert any(u.progress.iteration > 0 for u in updates)
        rows = penguins.drop(["species"]).slice(0, 5)
        assert predict(to_local, updates[-1].model_id, rows).num_rows == 5
