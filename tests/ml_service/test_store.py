"""The embedded store keeps models, versions, jobs and files across restarts and crashes."""

from __future__ import annotations

import dataclasses
import functools
import math
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ml_service.domain import (
    Curve,
    Evaluation,
    FeatureColumn,
    FeatureKind,
    JobError,
    JobRecord,
    JobState,
    LearningCurve,
    Metrics,
    Signature,
    Timings,
    VersionRecord,
)
from ml_service.errors import FailedPrecondition, InvalidArgument, NotFound
from ml_service.store import ArtifactCorrupted, Store, StoreInUse
from ml_service.store.files import sha256_file
from ml_service.store.metadata import Metadata
from ml_service.training_contract import TrainingResult
from tests.backends import Shared

SIGNATURE = Signature(
    features=(
        FeatureColumn("age", FeatureKind.NUMERIC, "int64", null_count=2),
        FeatureColumn("job", FeatureKind.CATEGORICAL, "string", ("admin", "technician")),
    ),
    target_column="y",
    target_arrow_type="string",
    classes=("no", "yes"),
)


_TRAINED_FIELDS = {f.name for f in dataclasses.fields(TrainingResult)}


def draft(
    model_id: str = "m-000000000001", parent_version: int = 0, **changes: object
) -> VersionRecord:
    """Return a complete uncommitted version; keyword arguments replace fields."""
    trained = TrainingResult(
        signature=SIGNATURE,
        metrics=Metrics(0.9, 0.85, 0.8, 0.95, 0.3),
        feature_importance=(("age", 70.0), ("job", 30.0)),
        train_rows=80,
        holdout_rows=20,
        timings=Timings(0.1, 0.2, 1.5, 0.3, 0.05),
        library_versions={"catboost": "1.2.10"},
        artifact_sha256="",
        artifact_size=0,
        notes=("the solver stopped early",),
    )
    base = VersionRecord(
        model_id=model_id,
        version=0,
        kind="catboost",
        hyperparameters={"iterations": 10, "learning_rate": 0.1, "verbose": False},
        training=trained,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        artifact_key="",
        parent_version=parent_version,
        dataset_digest="a" * 64,
        job_id="j-000000000001",
        holdout_fraction=0.2,
        seed=7,
    )
    nested = {k: v for k, v in changes.items() if k in _TRAINED_FIELDS}
    outer = {k: v for k, v in changes.items() if k not in _TRAINED_FIELDS}
    trained = dataclasses.replace(trained, **nested)  # type: ignore[arg-type]
    return dataclasses.replace(base, training=trained, **outer)  # type: ignore[arg-type]


def commit(store: Store, record: VersionRecord, path: str) -> VersionRecord:
    """Commit a version as the job manager does: with the digest the worker computed."""
    sha256, size = sha256_file(path)
    trained = dataclasses.replace(record.training, artifact_sha256=sha256, artifact_size=size)
    return store.commit_version(
        dataclasses.replace(record, training=trained), path, "bank", "bank marketing"
    )


def artifact(store: Store, content: bytes = b"model bytes", suffix: str = ".cbm") -> str:
    """Write an artifact into scratch space as a kind would."""
    path = store.scratch_path(suffix)
    Path(path).write_bytes(content)
    return path


def job(job_id: str, model_id: str = "m-000000000001", **changes: object) -> JobRecord:
    """Return a queued job; keyword arguments replace fields."""
    record = JobRecord(
        job_id=job_id,
        model_id=model_id,
        kind="catboost",
        state=JobState.QUEUED,
        parent_version=0,
        requested_hyperparameters={"depth": 4},
        target_column="y",
        rows=100,
        dataset_digest="b" * 64,
        created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


OpenStore = Callable[[Path], Store]


@pytest.fixture(params=["embedded", "postgres+s3"])
def open_store(request: pytest.FixtureRequest) -> OpenStore:
    """Open a store on SQLite and local files, or on PostgreSQL and an S3 bucket."""
    if request.param == "embedded":
        return Store.open
    shared: Shared = request.getfixturevalue("shared")
    return functools.partial(
        Store.open, database_url=shared.database_url, artifact_uri=shared.artifact_uri
    )


# For what only a local data directory shows: its files, its lock, its start-up sweep.
embedded_only = pytest.mark.parametrize("open_store", ["embedded"], indirect=True)


@pytest.fixture
def store(open_store: OpenStore, tmp_path: Path) -> Iterator[Store]:
    """A store on each backend: what holds here holds in embedded and shared mode alike."""
    with open_store(tmp_path / "data") as opened:
        yield opened


def test_commit_then_get_returns_every_field(store: Store) -> None:
    committed = commit(store, draft(), artifact(store))

    assert committed.version == 1
    assert committed.artifact_key.startswith("artifacts/m-000000000001/1-")
    assert committed.artifact_key.endswith(".cbm")
    assert committed.training.artifact_size == len(b"model bytes")
    assert store.get_version("m-000000000001", 1) == committed
    assert store.get_version("m-000000000001", 0) == committed
    model = store.get_model("m-000000000001")
    assert (model.name, model.description, model.kind) == ("bank", "bank marketing", "catboost")
    assert (model.latest_version, model.version_count) == (1, 1)
    assert model.created_at == model.updated_at == committed.created_at


def test_retrain_adds_versions_and_numbers_are_never_reused(store: Store) -> None:
    mid = "m-000000000001"
    commit(store, draft(mid), artifact(store))
    commit(store, draft(mid, parent_version=1), artifact(store, b"v2"))
    third = commit(store, draft(mid, parent_version=2), artifact(store, b"v3"))
    assert third.version == 3

    assert store.delete_version(mid, 3) is False
    fourth = commit(store, draft(mid, parent_version=2), artifact(store, b"v4"))

    assert fourth.version == 4
    model = store.get_model(mid)
    assert (model.latest_version, model.version_count) == (4, 3)
    assert model.updated_at == fourth.created_at
    with pytest.raises(NotFound, match="model 'm-000000000001' has no version 3"):
        store.get_version(mid, 3)


@embedded_only
def test_deleting_the_last_version_deletes_the_model_and_its_files(store: Store) -> None:
    version = commit(store, draft(), artifact(store))
    path = Path(store.open_artifact(version))

    assert store.delete_version("m-000000000001", 1) is True

    assert not path.exists()
    assert not path.parent.exists()
    with pytest.raises(NotFound, match="model 'm-000000000001' not found"):
        store.get_model("m-000000000001")


@embedded_only
def test_delete_model_removes_versions_and_artifacts(store: Store) -> None:
    mid = "m-000000000002"
    first = commit(store, draft(mid), artifact(store))
    commit(store, draft(mid, parent_version=1), artifact(store, b"other"))

    assert store.delete_model(mid) == 2

    assert not (store.data_dir / first.artifact_key).exists()
    assert not (store.data_dir / "artifacts" / mid).exists()
    with pytest.raises(NotFound, match="model 'm-000000000002' not found"):
        store.delete_model(mid)
    with pytest.raises(NotFound, match="model 'm-000000000002' not found"):
        store.list_versions(mid, 10, "")


@embedded_only
def test_an_embedded_store_keeps_no_change_log(store: Store) -> None:
    mid = "m-000000000002"
    commit(store, draft(mid), artifact(store))
    commit(store, draft(mid, parent_version=1), artifact(store, b"other"))
    store.delete_version(mid, 1)
    store.delete_model(mid)
    # Replicas read the log and prune it; with none, each commit and delete added a row.
    with sqlite3.connect(store.data_dir / "metadata.sqlite") as db:
        assert db.execute("SELECT count(*) FROM model_events").fetchone() == (0,)


def test_not_found_messages_name_the_missing_thing(store: Store) -> None:
    commit(store, draft("m-1"), artifact(store))
    with pytest.raises(NotFound, match="model 'm-123' not found"):
        store.get_model("m-123")
    with pytest.raises(NotFound, match="model 'm-123' not found"):
        store.get_version("m-123", 0)
    with pytest.raises(NotFound, match="model 'm-1' has no version 7"):
        store.get_version("m-1", 7)
    with pytest.raises(NotFound, match="model 'm-1' has no version 7"):
        store.delete_version("m-1", 7)
    with pytest.raises(NotFound, match="job 'j-9' not found"):
        store.get_job("j-9")


@embedded_only
def test_commit_refuses_inconsistent_lineage_and_leaves_no_file(store: Store) -> None:
    with pytest.raises(NotFound, match="model 'm-gone' not found"):
        commit(store, draft("m-gone", parent_version=1), artifact(store))
    commit(store, draft("m-1"), artifact(store))
    with pytest.raises(FailedPrecondition, match="already exists"):
        commit(store, draft("m-1"), artifact(store))
    with pytest.raises(FailedPrecondition, match="kind"):
        commit(store, draft("m-1", 1, kind="logistic_regression"), artifact(store))
    with pytest.raises(InvalidArgument) as caught:
        commit(store, draft("../escape"), artifact(store))
    assert caught.value.violations[0].field == "model_id"

    stored = [p for p in (store.data_dir / "artifacts").rglob("*") if p.is_file()]
    assert len(stored) == 1


def test_list_models_pages_newest_first(store: Store) -> None:
    ids = [f"m-{i:012d}" for i in range(5)]
    for mid in ids:
        commit(store, draft(mid), artifact(store))

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        models, token = store.list_models(2, token)
        seen += [m.model_id for m in models]
        pages += 1
        if not token:
            break

    assert seen == ids[::-1]
    assert pages == 3
    assert [m.model_id for m in store.list_models(0, "")[0]] == ids[::-1]


def test_list_versions_pages_newest_first(store: Store) -> None:
    commit(store, draft("m-1"), artifact(store))
    for parent in range(1, 5):
        commit(store, draft("m-1", parent_version=parent), artifact(store))

    first, token = store.list_versions("m-1", 3, "")
    rest, last = store.list_versions("m-1", 3, token)

    assert [v.version for v in first] == [5, 4, 3]
    assert [v.version for v in rest] == [2, 1]
    assert last == ""


@pytest.mark.parametrize("token", ["garbage!", "eyJ4IjoxfQ", "bm90IGpzb24"])
def test_invalid_page_token_is_an_invalid_argument(store: Store, token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        store.list_models(10, token)
    assert caught.value.violations[0].field == "page_token"


def test_page_token_of_another_list_is_refused(store: Store) -> None:
    for i in range(3):
        store.insert_job(job(f"j-{i}"))
    _, token = store.list_jobs(1, "")
    assert token

    with pytest.raises(InvalidArgument) as caught:
        store.list_models(1, token)
    assert caught.value.violations[0].field == "page_token"
    with pytest.raises(InvalidArgument):
        store.list_jobs(1, token, model_id="m-000000000001")


def test_jobs_round_trip_update_and_list(store: Store) -> None:
    store.insert_job(job("j-1", "m-a"))
    store.insert_job(job("j-2", "m-b"))
    store.insert_job(job("j-3", "m-a"))
    ended = datetime(2025, 1, 2, 3, 5, tzinfo=UTC)
    failed = job("j-2", "m-b", state=JobState.FAILED, ended_at=ended, error=JobError("X", "bad"))

    store.update_job(failed)

    assert store.get_job("j-2") == failed
    assert [j.job_id for j in store.list_jobs(10, "")[0]] == ["j-3", "j-2", "j-1"]
    page, token = store.list_jobs(1, "", model_id="m-a")
    assert [j.job_id for j in page] == ["j-3"]
    assert [j.job_id for j in store.list_jobs(1, token, model_id="m-a")[0]] == ["j-1"]
    with pytest.raises(FailedPrecondition, match="j-1"):
        store.insert_job(job("j-1"))
    with pytest.raises(NotFound, match="job 'j-9' not found"):
        store.update_job(job("j-9"))


def test_commit_marks_its_running_job_succeeded(store: Store) -> None:
    store.insert_job(job("j-000000000001", state=JobState.RUNNING))

    version = commit(store, draft(), artifact(store))

    stored = store.get_job("j-000000000001")
    assert stored.state is JobState.SUCCEEDED
    assert stored.result_version == version.version


def test_nan_metrics_round_trip(open_store: OpenStore, tmp_path: Path) -> None:
    nan_metrics = Metrics(0.5, 0.5, 0.4, math.nan, math.inf)
    with open_store(tmp_path) as store:
        commit(store, draft(metrics=nan_metrics), artifact(store))
    with open_store(tmp_path) as store:
        metrics = store.get_version("m-000000000001", 1).training.metrics

    assert metrics is not None
    assert math.isnan(metrics.roc_auc)
    assert metrics.log_loss == math.inf
    assert metrics.accuracy == 0.5


def test_numpy_hyperparameters_are_stored_as_plain_numbers(store: Store) -> None:
    params = {"depth": np.int64(4), "l2_leaf_reg": np.float64(3.5), "grow": "Depthwise"}
    commit(store, draft(hyperparameters=params), artifact(store))

    stored = store.get_version("m-000000000001", 1).hyperparameters

    assert stored == {"depth": 4, "l2_leaf_reg": 3.5, "grow": "Depthwise"}
    assert type(stored["depth"]) is int


def test_missing_metrics_round_trip(store: Store) -> None:
    commit(store, draft(metrics=None, holdout_fraction=0.0), artifact(store))
    assert store.get_version("m-000000000001", 1).training.metrics is None


def test_reopen_finds_models_versions_jobs_and_artifacts(
    open_store: OpenStore, tmp_path: Path
) -> None:
    with open_store(tmp_path) as store:
        version = commit(store, draft(), artifact(store))
        store.insert_job(job("j-2", state=JobState.SUCCEEDED, result_version=1))

    with open_store(tmp_path) as store:
        assert store.get_version("m-000000000001", 1) == version
        assert store.get_model("m-000000000001").version_count == 1
        assert store.get_job("j-2").state is JobState.SUCCEEDED
        assert Path(store.open_artifact(version)).read_bytes() == b"model bytes"


def test_reopen_marks_interrupted_jobs_failed(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.insert_job(job("j-q"))
        store.insert_job(job("j-r", state=JobState.RUNNING))
        store.insert_job(job("j-c", state=JobState.CANCELLED))

    with Store.open(tmp_path) as store:
        for job_id in ("j-q", "j-r"):
            stored = store.get_job(job_id)
            assert stored.state is JobState.FAILED
            assert stored.error == JobError("ABORTED", "interrupted by a server restart")
            assert stored.ended_at is not None
        assert store.get_job("j-c").state is JobState.CANCELLED
        assert store.get_job("j-c").error is None


@embedded_only
def test_corrupted_artifact_is_detected_on_open(store: Store) -> None:
    version = commit(store, draft(), artifact(store))
    (store.data_dir / version.artifact_key).write_bytes(b"model bytez")

    with pytest.raises(ArtifactCorrupted, match=r"model 'm-000000000001' version 1.*sha256"):
        store.open_artifact(version)


@embedded_only
def test_missing_artifact_is_reported(store: Store) -> None:
    version = commit(store, draft(), artifact(store))
    (store.data_dir / version.artifact_key).unlink()

    with pytest.raises(FailedPrecondition, match="missing"):
        store.open_artifact(version)


def test_artifact_deleted_under_a_load_reads_as_not_found(store: Store) -> None:
    version = commit(store, draft(), artifact(store))
    store.delete_version("m-000000000001", 1)

    with pytest.raises(NotFound, match="model 'm-000000000001' not found"):
        store.open_artifact(version)


@embedded_only
def test_put_dataset_is_content_addressed(store: Store, tmp_path: Path) -> None:
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    table = pa.table({"x": [1, 2, 3]})
    pq.write_table(table, first)
    second.write_bytes(first.read_bytes())

    digest = store.put_dataset(str(first))

    assert store.put_dataset(str(second)) == digest
    assert not first.exists()
    assert not second.exists()
    assert pq.read_table(store.dataset_path(digest)).equals(table)
    assert list((store.data_dir / "datasets").iterdir()) == [
        store.data_dir / "datasets" / f"{digest}.parquet"
    ]
    with pytest.raises(NotFound, match="dataset"):
        store.dataset_path("0" * 64)
    with pytest.raises(NotFound):
        store.dataset_path("../metadata")


def dataset(store: Store, content: bytes) -> str:
    path = store.scratch_path(".parquet")
    Path(path).write_bytes(content)
    return store.put_dataset(path)


def test_sweep_removes_what_no_row_references(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        kept = dataset(store, b"kept")
        dropped = dataset(store, b"only a finished job used this")
        version = commit(store, draft(dataset_digest=kept), artifact(store))
        store.insert_job(job("j-1", dataset_digest=dropped, state=JobState.FAILED))
        Path(store.scratch_path(".upload")).write_bytes(b"half an upload")
        (tmp_path / "tmp" / "nested").mkdir()
        orphan = tmp_path / "artifacts" / "m-000000000001" / "2-deadbeef.cbm"
        orphan.write_bytes(b"written before a crash, no row")
        (tmp_path / "artifacts" / "m-crashed").mkdir()
        (tmp_path / "artifacts" / "m-crashed" / "1-cafe.cbm").write_bytes(b"no row either")

    with Store.open(tmp_path) as store:
        assert list((tmp_path / "tmp").iterdir()) == []
        assert not orphan.exists()
        assert not (tmp_path / "artifacts" / "m-crashed").exists()
        assert Path(store.open_artifact(version)).exists()
        assert Path(store.dataset_path(kept)).exists()
        with pytest.raises(NotFound):
            store.dataset_path(dropped)


def test_datasets_of_unfinished_jobs_are_referenced(tmp_path: Path) -> None:
    metadata = Metadata(tmp_path / "metadata.sqlite")
    try:
        metadata.insert_job(job("j-1", dataset_digest="c" * 64))
        metadata.insert_job(job("j-2", dataset_digest="d" * 64, state=JobState.SUCCEEDED))
        assert metadata.dataset_digests() == {"c" * 64}
    finally:
        metadata.close()


def test_database_is_wal_and_intact(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        commit(store, draft(), artifact(store))
        conn = sqlite3.connect(tmp_path / "metadata.sqlite")
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            conn.close()


@embedded_only
def test_a_second_process_cannot_open_the_same_directory(store: Store) -> None:
    with pytest.raises(StoreInUse, match="in use"):
        Store.open(store.data_dir)


def test_close_releases_the_directory(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.close()
    store.close()
    Store.open(tmp_path).close()


def test_concurrent_commits_get_distinct_versions(store: Store) -> None:
    commit(store, draft("m-1"), artifact(store))

    def retrain(i: int) -> int:
        return commit(store, draft("m-1", 1), artifact(store, bytes([i]))).version

    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = sorted(pool.map(retrain, range(16)))

    assert versions == list(range(2, 18))
    assert store.get_model("m-1").version_count == 17


def test_blobs_can_live_on_another_filesystem(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    with Store.open(tmp_path / "meta", filesystem=remote) as store:
        digest = dataset(store, b"rows")
        version = commit(store, draft(dataset_digest=digest), artifact(store))
        (tmp_path / "bucket" / "artifacts" / "m-x").mkdir()
        (tmp_path / "bucket" / "artifacts" / "m-x" / "1-0.cbm").write_bytes(b"orphan")

        copy = store.open_artifact(version)
        assert Path(copy).read_bytes() == b"model bytes"
        assert Path(copy).is_relative_to(tmp_path / "meta" / "tmp")
        assert Path(store.dataset_path(digest)).read_bytes() == b"rows"
        assert (tmp_path / "bucket" / version.artifact_key).exists()

    with Store.open(tmp_path / "meta", filesystem=remote) as store:
        # Another replica's, for all this database knows: opening sweeps only local disk.
        assert (tmp_path / "bucket" / "artifacts" / "m-x" / "1-0.cbm").exists()
        (tmp_path / "bucket" / version.artifact_key).write_bytes(b"tampered")
        with pytest.raises(ArtifactCorrupted):
            store.open_artifact(version)
        assert list((tmp_path / "meta" / "tmp").iterdir()) == []


CRASH_BETWEEN_FILE_AND_ROW = """
import os, sys
from pathlib import Path
from ml_service.store import Store
from ml_service.store.metadata import Metadata
sys.path.insert(0, {tests!r})
from test_store import artifact, commit, draft

def crash(*args, **kwargs):
    os._exit(3)

store = Store.open({data!r})
commit(store, draft(), artifact(store))
Metadata.insert_version = crash
commit(store, draft(parent_version=1), artifact(store, b"never committed"))
"""


def test_a_crash_between_file_and_row_loses_nothing_committed(tmp_path: Path) -> None:
    script = CRASH_BETWEEN_FILE_AND_ROW.format(tests=str(Path(__file__).parent), data=str(tmp_path))
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, check=False, timeout=60)
    assert done.returncode == 3
    assert len(list((tmp_path / "artifacts").rglob("2-*"))) == 1  # placed, never recorded

    with Store.open(tmp_path) as store:
        model = store.get_model("m-000000000001")
        assert (model.latest_version, model.version_count) == (1, 1)
        assert Path(store.open_artifact(store.get_version(model.model_id, 1))).exists()
        assert list((tmp_path / "artifacts").rglob("2-*")) == []
        assert commit(store, draft(parent_version=1), artifact(store)).version == 3


def test_evaluation_and_learning_curve_round_trip(store: Store) -> None:
    evaluation = Evaluation(
        confusion_matrix=((8, 2), (1, 9)),
        curves=(Curve("roc", "yes", (0.0, 0.2, 1.0), (0.0, 0.9, 1.0), 0.91),),
    )
    curve = LearningCurve(iterations=(1, 2), series={"holdout_Logloss": (0.7, math.nan)})
    commit(store, draft(evaluation=evaluation, learning_curve=curve), artifact(store))

    trained = store.get_version("m-000000000001", 1).training
    assert trained.evaluation == evaluation
    assert trained.learning_curve is not None and trained.learning_curve.iterations == (1, 2)
    assert math.isnan(trained.learning_curve.series["holdout_Logloss"][1])
