"""A whole service on PostgreSQL and an S3 bucket: train, predict, retrain, delete, restart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from ml_service.store import Store
from ml_service.telemetry import Telemetry
from mlops_client.ipc import from_ipc, to_ipc
from tests.backends import Postgres, Shared
from tests.conftest import ServiceThread, service_settings
from tests.ml_service.helpers import Client, until


def predict(channel: grpc.Channel, model_id: str, rows: pa.Table, version: int = 0) -> pa.Table:
    """Predict through the service and return its Arrow answer."""
    stub = ps_grpc.PredictionServiceStub(channel)
    request = ps.PredictRequest(model_id=model_id, version=version, arrow_ipc=to_ipc(rows))
    return from_ipc(stub.Predict(request, timeout=60).arrow_ipc)


def objects(shared: Shared, prefix: str) -> list[str]:
    """The keys stored in the bucket under the service's prefix, e.g. "artifacts"."""
    base = shared.artifact_uri.removeprefix("s3://")
    selector = pafs.FileSelector(f"{base}/{prefix}", recursive=True, allow_not_found=True)
    infos = shared.s3.filesystem().get_file_info(selector)
    return sorted(i.path.removeprefix(f"{base}/") for i in infos if i.type == pafs.FileType.File)


def test_a_service_on_postgres_and_s3_trains_predicts_retrains_and_deletes(
    start_service: Any, shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    settings = {"database_url": shared.database_url, "artifact_uri": shared.artifact_uri}
    service = start_service(tmp_path / "scratch", **settings)
    rows = penguins.drop(["species"]).slice(0, 20)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        first = client.train(
            penguins, kind="catboost", target_column="species", hyperparameters={"iterations": 20}
        )
        assert first.state == pb.JOB_STATE_SUCCEEDED, first.error.message
        assert predict(channel, first.model_id, rows).num_rows == 20

        second = client.watch(client.retrain(model_id=first.model_id).job_id)[-1]
        assert second.state == pb.JOB_STATE_SUCCEEDED, second.error.message
        assert second.result.version == 2
        assert len(objects(shared, "artifacts")) == 2
        assert len(objects(shared, "datasets")) == 1
        # The data directory holds only scratch space: nothing of the model lives there.
        assert not (tmp_path / "scratch" / "metadata.sqlite").exists()
        assert not (tmp_path / "scratch" / "artifacts").exists()

        client.models.DeleteModelVersion(
            ms.DeleteModelVersionRequest(model_id=first.model_id, version=1)
        )
        with pytest.raises(grpc.RpcError) as gone:
            predict(channel, first.model_id, rows, version=1)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert len(objects(shared, "artifacts")) == 1
    service.stop()

    # A new process on another scratch directory finds everything in the shared store.
    again = start_service(tmp_path / "elsewhere", **settings)
    with grpc.insecure_channel(again.target) as channel:
        client = Client(channel)
        model = client.models.GetModel(ms.GetModelRequest(model_id=first.model_id)).model
        assert (model.latest_version, model.version_count) == (2, 1)
        labels = predict(channel, first.model_id, rows).column("label").to_pylist()
        assert set(labels) <= {"Adelie", "Chinstrap", "Gentoo"}
        client.models.DeleteModel(ms.DeleteModelRequest(model_id=first.model_id))
        assert objects(shared, "artifacts") == []


def test_an_embedded_store_on_a_shared_bucket_deletes_none_of_its_files(
    shared: Shared, tmp_path: Path
) -> None:
    # A replica whose MLOPS_DATABASE_URL is missing (or misspelt) opens SQLite of its own
    # over the shared bucket: no row of it references the replicas' files.
    base = shared.artifact_uri.removeprefix("s3://")
    s3 = shared.s3.filesystem()
    for key in ("artifacts/m-000000000001/1-deadbeef.cbm", f"datasets/{'c' * 64}.parquet"):
        with s3.open_output_stream(f"{base}/{key}") as out:
            out.write(b"bytes")
    before = objects(shared, "")
    with Store.open(tmp_path / "scratch", artifact_uri=shared.artifact_uri):
        pass
    assert objects(shared, "") == before


def test_jobs_waiting_in_the_shared_queue_are_counted_by_every_replica(
    shared: Shared, postgres: Postgres, tmp_path: Path, penguins: pa.Table
) -> None:
    # A waiting job is a row no replica holds: each replica's own count said 0 however many
    # waited, and the dashboard's queue panel stayed flat.
    settings = {"database_url": shared.database_url, "artifact_uri": shared.artifact_uri}
    replicas = [
        ServiceThread(
            service_settings(tmp_path / name, max_concurrent_trainings=1, **settings), Telemetry()
        ).start()
        for name in ("a", "b")
    ]
    long = {"kind": "catboost", "target_column": "species", "hyperparameters": {"iterations": 5000}}
    try:
        with grpc.insecure_channel(replicas[0].target) as channel:
            client = Client(channel)
            jobs = [client.create_job(penguins, **long).job_id for _ in range(4)]

            def waiting(replica: ServiceThread) -> float | None:
                assert replica.telemetry is not None
                registry = replica.telemetry.metrics.registry
                return registry.get_sample_value("mlops_training_jobs_queued")

            # Two run (one a replica), two wait, as both replicas say.
            until(lambda: [waiting(r) for r in replicas] == [2.0, 2.0], 30)
            for job_id in jobs:
                client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job_id))
            until(lambda: [waiting(r) for r in replicas] == [0.0, 0.0], 30)
            with postgres.down():
                unknown = waiting(replicas[1])  # a scrape, not an error that fails it
            assert unknown is not None and math.isnan(unknown)
    finally:
        for replica in replicas:
            replica.stop()
