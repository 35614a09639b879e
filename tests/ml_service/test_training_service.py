"""Train, watch, retrain, cancel and delete over real gRPC on the real datasets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from tests.ml_service.helpers import Client


@pytest.fixture
def client(channel: grpc.Channel) -> Client:
    return Client(channel)


def test_catboost_on_adult_reports_progress_and_good_metrics(
    client: Client, adult: pa.Table
) -> None:
    job = client.create_job(
        adult,
        kind="catboost",
        target_column="income",
        name="adult income",
        hyperparameters={"iterations": 150, "learning_rate": 0.2, "depth": 6},
    )
    assert job.state == pb.JOB_STATE_QUEUED
    assert job.rows == adult.num_rows

    updates = client.watch(job.job_id)
    final = updates[-1]
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
    # A watcher may miss updates while it is busy, but every later one says how far the fit got.
    iterations = [u.progress.iteration for u in updates if u.progress.iteration]
    assert iterations and iterations == sorted(iterations) and iterations[-1] == 150
    assert final.progress.iteration == final.progress.total_iterations == 150
    fitting = [u for u in updates if u.progress.stage == "fitting"]
    assert any("learn_Logloss" in u.progress.metrics for u in fitting)

    version = final.result
    assert version.version == 1 and version.kind == "catboost"
    assert version.metrics.accuracy > 0.85
    assert 0.5 < version.metrics.roc_auc <= 1.0
    assert version.signature.target_column == "income"
    assert list(version.signature.classes) == ["<=50K", ">50K"]
    workclass = next(f for f in version.signature.features if f.name == "workclass")
    assert workclass.feature_type == pb.FEATURE_TYPE_CATEGORICAL and workclass.null_count > 0
    assert version.train_rows + version.holdout_rows == adult.num_rows
    assert version.hyperparameters["iterations"] == 150
    assert len(version.artifact_sha256) == 64 and version.artifact_size_bytes > 0
    assert "catboost" in version.library_versions
    assert version.feature_importance[0].importance >= version.feature_importance[-1].importance
    assert version.lineage.dataset_digest == final.dataset_digest

    model = client.models.GetModel(ms.GetModelRequest(model_id=final.model_id)).model
    assert model.name == "adult income" and model.latest_version == 1


def test_logistic_regression_on_adult(client: Client, adult: pa.Table) -> None:
    final = client.train(adult, kind="logistic_regression", target_column="income")
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
    assert final.result.metrics.accuracy > 0.8
    stages = {u.progress.stage for u in client.watch(final.job_id)}
    assert "succeeded" in stages


@pytest.mark.parametrize(
    ("kind", "params"),
    [("catboost", {"iterations": 60}), ("logistic_regression", {"C": 1.0})],
)
def test_multiclass_penguins(
    client: Client, penguins: pa.Table, kind: str, params: dict[str, Any]
) -> None:
    final = client.train(penguins, kind=kind, target_column="species", hyperparameters=params)
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
    assert list(final.result.signature.classes) == ["Adelie", "Chinstrap", "Gentoo"]
    assert final.result.metrics.accuracy > 0.9
    assert final.result.metrics.f1_macro > 0.85


def test_retrain_makes_version_two_with_lineage(client: Client, penguins: pa.Table) -> None:
    first = client.train(
        penguins, kind="catboost", target_column="species", hyperparameters={"iterations": 30}
    )
    job = client.retrain(model_id=first.model_id, hyperparameters={"depth": 4})
    final = client.watch(job.job_id)[-1]
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
    v2 = final.result
    assert (v2.model_id, v2.version) == (first.model_id, 2)
    assert v2.lineage.parent_version == 1
    assert v2.lineage.dataset_digest == first.result.lineage.dataset_digest
    assert v2.hyperparameters["depth"] == 4
    assert v2.hyperparameters["iterations"] == 30

    fewer = penguins.slice(0, 250)
    job = client.retrain(fewer, model_id=first.model_id, parent_version=1)
    v3 = client.watch(job.job_id)[-1].result
    assert v3.version == 3 and v3.lineage.parent_version == 1
    assert v3.lineage.dataset_digest != first.result.lineage.dataset_digest
    assert v3.train_rows + v3.holdout_rows == 250

    listed = client.models.ListModelVersions(
        ms.ListModelVersionsRequest(model_id=first.model_id, page_size=2)
    )
    assert [v.version for v in listed.model_versions] == [3, 2]
    rest = client.models.ListModelVersions(
        ms.ListModelVersionsRequest(model_id=first.model_id, page_token=listed.next_page_token)
    )
    assert [v.version for v in rest.model_versions] == [1]


def test_cancel_stops_a_long_catboost_job(client: Client, adult: pa.Table) -> None:
    job = client.create_job(
        adult, kind="catboost", target_column="income", hyperparameters={"iterations": 10000}
    )
    request = ts.WatchTrainingJobRequest(job_id=job.job_id)
    for update in client.training.WatchTrainingJob(request, timeout=120):
        if update.job.progress.iteration >= 5:
            break
    started = time.monotonic()
    cancelled = client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job.job_id))
    assert cancelled.job.state == pb.JOB_STATE_CANCELLED
    assert time.monotonic() - started < 5
    final = client.watch(job.job_id)[-1]
    assert final.state == pb.JOB_STATE_CANCELLED
    iteration = final.progress.iteration
    time.sleep(1.0)
    again = client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=job.job_id)).job
    assert again.state == pb.JOB_STATE_CANCELLED and again.progress.iteration == iteration
    with pytest.raises(grpc.RpcError) as err:
        client.models.GetModel(ms.GetModelRequest(model_id=job.model_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job.job_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already ended (cancelled)" in err.value.details()


def test_server_answers_promptly_while_training(client: Client, adult: pa.Table) -> None:
    job = client.create_job(
        adult, kind="catboost", target_column="income", hyperparameters={"iterations": 3000}
    )
    deadline_hits = 0
    for _ in range(20):
        try:
            client.models.ListModelKinds(ms.ListModelKindsRequest(), timeout=1.0)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            deadline_hits += 1
        time.sleep(0.05)
    running = client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=job.job_id)).job
    client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job.job_id))
    assert deadline_hits == 0
    assert running.state == pb.JOB_STATE_RUNNING


def test_queue_bound_gives_resource_exhausted(start_service: Any, penguins: pa.Table) -> None:
    service = start_service(max_concurrent_trainings=1, max_queued_jobs=1)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        spec = {"kind": "catboost", "target_column": "species"}
        long = {"iterations": 10000, "learning_rate": 0.001}
        running = client.create_job(penguins, hyperparameters=long, **spec)
        for update in client.training.WatchTrainingJob(
            ts.WatchTrainingJobRequest(job_id=running.job_id), timeout=60
        ):
            if update.job.state == pb.JOB_STATE_RUNNING:
                break
        queued = client.create_job(penguins, hyperparameters=long, **spec)
        with pytest.raises(grpc.RpcError) as err:
            client.create_job(penguins, hyperparameters=long, **spec)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full" in err.value.details()
        for job in (queued, running):
            client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job.job_id))
        jobs = client.training.ListTrainingJobs(ts.ListTrainingJobsRequest()).jobs
        assert {j.state for j in jobs} == {pb.JOB_STATE_CANCELLED}


def test_delete_version_and_model_remove_files(
    start_service: Any, tmp_path: Path, penguins: pa.Table
) -> None:
    data_dir = tmp_path / "store"
    service = start_service(data_dir)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        spec = {"kind": "logistic_regression", "target_column": "species"}
        first = client.train(penguins, **spec)
        second = client.watch(client.retrain(model_id=first.model_id).job_id)[-1]
        assert second.result.version == 2

        def artifacts() -> list[str]:
            return sorted(p.name for p in (data_dir / "artifacts").rglob("*") if p.is_file())

        assert len(artifacts()) == 2

        gone = client.models.DeleteModelVersion(
            ms.DeleteModelVersionRequest(model_id=first.model_id, version=1)
        )
        assert not gone.model_deleted
        assert len(artifacts()) == 1
        with pytest.raises(grpc.RpcError) as err:
            client.models.GetModelVersion(
                ms.GetModelVersionRequest(model_id=first.model_id, version=1)
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        deleted = client.models.DeleteModel(ms.DeleteModelRequest(model_id=first.model_id))
        assert deleted.deleted_versions == 1
        assert artifacts() == []
        with pytest.raises(grpc.RpcError) as err:
            client.models.GetModel(ms.GetModelRequest(model_id=first.model_id))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert f"'{first.model_id}'" in err.value.details()


def test_models_survive_a_restart(start_service: Any, tmp_path: Path, penguins: pa.Table) -> None:
    data_dir = tmp_path / "store"
    service = start_service(data_dir)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        trained = [
            client.train(penguins, kind=kind, target_column="species", name=kind)
            for kind in ("catboost", "logistic_regression")
        ]
    service.stop()

    again = start_service(data_dir)
    with grpc.insecure_channel(again.target) as channel:
        client = Client(channel)
        models = client.models.ListModels(ms.ListModelsRequest()).models
        assert {m.model_id for m in models} == {t.model_id for t in trained}
        for job in trained:
            version = client.models.GetModelVersion(
                ms.GetModelVersionRequest(model_id=job.model_id)
            ).model_version
            assert version.artifact_sha256 == job.result.artifact_sha256
            stored = client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id=job.job_id))
            assert stored.job.state == pb.JOB_STATE_SUCCEEDED
            assert stored.job.result.version == 1
