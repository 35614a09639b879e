"""Shared mode's job queue on a real PostgreSQL and S3: claims, leases at commit, housekeeping."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from mlops.v1 import types_pb2 as pb
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ml_service import training_contract
from ml_service.domain import FeatureKind, JobState, VersionRecord
from ml_service.errors import NotFound, ResourceExhausted
from ml_service.job_manager import JobManager
from ml_service.live_jobs import LEASE_LAPSED, LiveJob
from ml_service.predictor import ModelCache, Predictions, PredictLimits
from ml_service.replicas import ReplicaSync
from ml_service.store import Store, tables
from ml_service.store.database import (
    alembic_config,
    create_engine,
    head_revision,
    sqlite_url,
    upgrade,
)
from ml_service.store.errors import LeaseLost
from ml_service.store.shared import SharedRows
from ml_service.store.tables import jobs, model_events
from ml_service.telemetry import Telemetry
from ml_service.training_contract import TrainingResult, TrainingTask
from tests.backends import Shared
from tests.conftest import ServiceThread, service_settings
from tests.ml_service.helpers import Client
from tests.ml_service.test_shared_mode import objects
from tests.ml_service.test_store import artifact, commit, draft, job

TASK = TrainingTask(
    kind="catboost",
    hyperparameters={"iterations": 10},
    dataset_path="",
    target_column="y",
    features=(("age", FeatureKind.NUMERIC),),
    holdout_fraction=0.2,
    seed=7,
    artifact_path="",
)
ENCODED = training_contract.encode(TASK)


@pytest.fixture
def store(shared: Shared, tmp_path: Path) -> Iterator[Store]:
    """A store on the shared PostgreSQL database and S3 bucket."""
    with Store.open(
        tmp_path / "scratch", database_url=shared.database_url, artifact_uri=shared.artifact_uri
    ) as opened:
        yield opened


def rows(store: Store) -> SharedRows:
    assert store.shared is not None
    return store.shared


def queue(store: Store, count: int, max_queued: int = 100) -> list[str]:
    """Queue `count` jobs (of models m-<n>) and return their ids, oldest first."""
    ids = [f"j-{n:012d}" for n in range(count)]
    for n, job_id in enumerate(ids):
        rows(store).enqueue(job(job_id, f"m-{n:012d}"), ENCODED, max_queued, "r-accepting", 0)
    return ids


def now() -> datetime:
    return datetime.now(UTC)


def test_concurrent_claimers_take_every_queued_job_exactly_once_oldest_first(
    store: Store,
) -> None:
    ids = queue(store, 12)
    first = rows(store).claim("r-first", 30, now())
    assert first is not None
    record, text = first
    assert record.job_id == ids[0]
    assert record.state is JobState.RUNNING and record.started_at is not None
    assert training_contract.decode_task(text) == TASK
    stored = store.get_job(ids[0])
    assert (stored.state, stored.started_at) == (JobState.RUNNING, record.started_at)

    def drain(owner: str) -> list[str]:
        taken = []
        while (claimed := rows(store).claim(owner, 30, now())) is not None:
            taken.append(claimed[0].job_id)
        return taken

    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(drain, [f"r-{n}" for n in range(4)]))
    claimed = [job_id for part in taken for job_id in part]
    assert sorted(claimed) == ids[1:]
    # Each claimer took its jobs in queue order.
    assert all(part == sorted(part) for part in taken)
    assert rows(store).claim("r-late", 30, now()) is None


def test_a_claim_takes_the_lease_in_the_same_step(store: Store, shared: Shared) -> None:
    (job_id,) = queue(store, 1)
    assert rows(store).claim("r-a", 0.2, now()) is not None
    time.sleep(0.4)
    # Never renewed: the claim's own lease lapses and any replica fails the job.
    assert rows(store).fail_lapsed(LEASE_LAPSED, now().isoformat()) == [job_id]
    failed = store.get_job(job_id)
    assert failed.state is JobState.FAILED
    assert failed.error is not None and failed.error.message == "the replica running it stopped"


def test_a_job_nobody_claimed_is_cancelled_where_it_waits(store: Store) -> None:
    waiting, claimed = queue(store, 2)
    assert rows(store).claim("r-a", 30, now()) is not None  # the older one
    assert rows(store).cancel_queued(claimed, now())
    assert store.get_job(claimed).state is JobState.CANCELLED
    assert rows(store).claim("r-b", 30, now()) is None
    # A running job is not cancelled here: its replica is asked to stop it instead.
    assert not rows(store).cancel_queued(waiting, now())
    assert store.get_job(waiting).state is JobState.RUNNING


def test_the_queue_limit_counts_waiting_jobs_and_free_workers_of_the_accepting_replica(
    store: Store,
) -> None:
    shared = rows(store)
    shared.enqueue(job("j-000000000001"), ENCODED, 1, "r-a", 1)
    # One may wait, and r-a's idle worker is about to take one more.
    shared.enqueue(job("j-000000000002", "m-000000000002"), ENCODED, 1, "r-a", 1)
    with pytest.raises(ResourceExhausted, match="queue is full"):
        shared.enqueue(job("j-000000000003", "m-000000000003"), ENCODED, 1, "r-a", 1)
    # The same answer before an upload, without taking a place.
    with pytest.raises(ResourceExhausted, match="queue is full"):
        shared.check_room(1, "r-a", 1)
    assert shared.claim("r-a", 30, now()) is not None
    shared.check_room(1, "r-b", 1)  # r-b's idle worker would take the next one
    # r-a's worker is busy now; one job still waits, which is the limit.
    with pytest.raises(ResourceExhausted, match="queue is full"):
        shared.enqueue(job("j-000000000004", "m-000000000004"), ENCODED, 1, "r-a", 1)


def commit_as(store: Store, owner: str, job_id: str, model_id: str = "m-000000000000") -> None:
    """Commit a version of the job's model the way a replica does."""
    record = draft(model_id=model_id, job_id=job_id)
    path = artifact(store)
    trained = dataclasses.replace(record.training, artifact_sha256="0" * 64, artifact_size=11)
    store.commit_version(dataclasses.replace(record, training=trained), path, "n", "d", owner)


def test_a_replica_whose_lease_lapsed_cannot_commit_its_version(
    store: Store, shared: Shared
) -> None:
    (job_id,) = queue(store, 1)
    assert rows(store).claim("r-a", 0.2, now()) is not None
    time.sleep(0.4)

    # Lapsed but not yet failed by anyone: still no commit.
    with pytest.raises(LeaseLost, match="no longer holds the lease"):
        commit_as(store, "r-a", job_id)
    with pytest.raises(NotFound):
        store.get_model("m-000000000000")
    assert store.list_models(10, "")[0] == []
    assert objects(shared, "artifacts") == []
    assert store.get_job(job_id).state is JobState.RUNNING

    # Failed by another replica: neither a version nor the lapsed replica's end lands.
    assert rows(store).fail_lapsed(LEASE_LAPSED, now().isoformat()) == [job_id]
    with pytest.raises(LeaseLost):
        commit_as(store, "r-a", job_id)
    ended = dataclasses.replace(store.get_job(job_id), state=JobState.CANCELLED, error=None)
    assert not rows(store).finish(ended, "r-a")
    failed = store.get_job(job_id)
    assert failed.state is JobState.FAILED and failed.error == LEASE_LAPSED
    assert store.list_models(10, "")[0] == []
    assert objects(shared, "artifacts") == []


def test_another_replica_cannot_commit_a_job_it_does_not_hold(store: Store) -> None:
    (job_id,) = queue(store, 1)
    assert rows(store).claim("r-a", 30, now()) is not None
    with pytest.raises(LeaseLost):
        commit_as(store, "r-b", job_id)
    commit_as(store, "r-a", job_id)
    done = store.get_job(job_id)
    # The refused commit had taken number 1: numbers are never handed out twice.
    assert (done.state, done.result_version) == (JobState.SUCCEEDED, 2)
    assert [v.job_id for v in store.list_versions("m-000000000000", 10, "")[0]] == [job_id]


def test_model_events_older_than_the_retention_are_pruned(store: Store) -> None:
    commit(store, draft(), artifact(store))
    store.delete_version("m-000000000001", 1)
    shared = rows(store)
    assert shared.last_event() == 2
    assert shared.prune_events(3600) == 0
    time.sleep(0.05)
    assert shared.prune_events(0.01) == 2
    assert shared.events_after(0) == []
    # Numbers go on from where they were: a replica that saw event 2 misses nothing new.
    commit(store, draft(model_id="m-000000000002"), artifact(store))
    assert [seq for seq, *_ in shared.events_after(2)] == [3]


def test_the_orphan_sweep_deletes_only_old_files_no_row_references(
    store: Store, shared: Shared
) -> None:
    kept = commit(store, draft(), artifact(store))
    base = shared.artifact_uri.removeprefix("s3://")
    s3 = shared.s3.filesystem()
    # A dataset a queued job waits on, one nothing references, an artifact of no version.
    waiting, unused = "c" * 64, "d" * 64
    rows(store).enqueue(job("j-000000000009", dataset_digest=waiting), ENCODED, 10, "r-a", 0)
    for key in (
        f"datasets/{waiting}.parquet",
        f"datasets/{unused}.parquet",
        "artifacts/m-000000000001/7-deadbeef.cbm",
    ):
        with s3.open_output_stream(f"{base}/{key}") as out:
            out.write(b"bytes")
    before = objects(shared, "")
    assert len(before) == 4

    # Young files may be a commit in flight: the grace period keeps them.
    assert store.sweep_orphans(3600).artifacts == 0
    assert objects(shared, "") == before
    time.sleep(1.1)  # object times have one-second resolution
    report = store.sweep_orphans(0)
    assert (report.artifacts, report.datasets) == (1, 1)
    assert objects(shared, "") == sorted([kept.artifact_key, f"datasets/{waiting}.parquet"])
    assert Path(store.open_artifact(kept)).read_bytes() == b"model bytes"


async def never_commits(job: LiveJob, result: TrainingResult) -> VersionRecord:
    raise AssertionError("nothing trains here")


def replica_sync(store: Store, predictions: object, **options: float) -> ReplicaSync:
    """A replica's sync loop on the store, with no jobs of its own."""
    jobs = JobManager(store, never_commits, max_concurrent=1, max_queued=1, cancel_grace_seconds=1)
    return ReplicaSync(
        store,
        jobs,
        predictions,  # type: ignore[arg-type]
        owner="r-a",
        lease_seconds=30,
        **options,
    )


class Forgotten:
    """Stands for the model cache: records what the sync loop tells it to forget."""

    def __init__(self) -> None:
        self.models: list[str] = []

    def forget(self, model_id: str, version: int = 0) -> None:
        self.models.append(model_id)

    def forget_latest(self, model_id: str) -> None:
        self.models.append(model_id)


def test_an_event_committed_after_a_later_numbered_one_is_still_followed(
    store: Store, shared: Shared
) -> None:
    engine = create_engine(shared.database_url)
    forgotten = Forgotten()

    def event(conn: sa.Connection, model_id: str) -> None:
        conn.execute(
            model_events.insert().values(
                model_id=model_id, version=0, event="deleted", at=time.time()
            )
        )

    async def follow() -> None:
        sync = replica_sync(store, forgotten, housekeeping_seconds=3600)
        await sync.start()
        try:
            with engine.connect() as slow:
                slow.begin()
                event(slow, "m-early")  # takes number 1, commits last
                with engine.begin() as fast:
                    event(fast, "m-late")  # number 2, committed first
                for _ in range(40):
                    await asyncio.sleep(0.05)
                assert forgotten.models == ["m-late"]
                slow.commit()
            for _ in range(40):
                if "m-early" in forgotten.models:
                    break
                await asyncio.sleep(0.05)
        finally:
            await sync.close()

    try:
        asyncio.run(follow())
    finally:
        engine.dispose()
    # Within a second of its commit, and only once each.
    assert forgotten.models == ["m-late", "m-early"]


def test_a_replica_sweeps_and_prunes_in_the_background(store: Store, shared: Shared) -> None:
    commit(store, draft(), artifact(store))
    store.delete_model("m-000000000001")
    base = shared.artifact_uri.removeprefix("s3://")
    with shared.s3.filesystem().open_output_stream(f"{base}/artifacts/m-1/9-0.cbm") as out:
        out.write(b"orphan")
    time.sleep(1.1)

    async def housekeep() -> None:
        predictions = Predictions(
            ModelCache(1, store.open_artifact), store.get_version, PredictLimits(1, 1, 1)
        )
        sync = replica_sync(
            store,
            predictions,
            housekeeping_seconds=0.1,
            event_retention_seconds=0.5,
            orphan_grace_seconds=0.5,
        )
        await sync.start()
        try:
            for _ in range(100):
                if not objects(shared, "artifacts") and not rows(store).events_after(0):
                    return
                await asyncio.sleep(0.1)
        finally:
            await sync.close()

    asyncio.run(housekeep())
    assert objects(shared, "artifacts") == []
    assert rows(store).events_after(0) == []


OLD_JOB = (
    "INSERT INTO jobs (job_id, model_id, kind, state, parent_version,"
    " requested_hyperparameters, target_column, rows, dataset_digest, created_at,"
    " result_version, name, description, owner, lease_until) VALUES (:id, 'm-000000000001',"
    " 'catboost', :state, 0, '{}', 'y', 10, 'bbbb', '2025-01-01T00:00:00+00:00', 0, 'n', 'd',"
    " 'r-old', 1e12)"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres+s3"])
def test_jobs_of_the_previous_schema_survive_the_upgrade(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if backend == "sqlite":
        url, options = sqlite_url(data / "metadata.sqlite"), {}
    else:
        shared: Shared = request.getfixturevalue("shared")
        url = shared.database_url
        options = {"database_url": url, "artifact_uri": shared.artifact_uri}
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0003")
        conn.execute(sa.text(OLD_JOB), {"id": "j-000000000001", "state": "succeeded"})
        conn.execute(sa.text(OLD_JOB), {"id": "j-000000000002", "state": "queued"})
    engine.dispose()

    with Store.open(data, **options) as store:
        assert store.get_job("j-000000000001").state is JobState.SUCCEEDED
        if store.shared is None:
            # Embedded: whatever the last process left unfinished failed as interrupted.
            assert store.get_job("j-000000000002").state is JobState.FAILED
        else:
            # The old replica that queued it runs it; without a task nobody else claims it.
            assert store.get_job("j-000000000002").state is JobState.QUEUED
            assert store.shared.claim("r-new", 30, now()) is None
    engine = create_engine(url)
    with engine.connect() as conn:
        tasks = conn.execute(sa.select(jobs.c.task)).scalars().all()
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert tasks == [None, None]
    assert revision == head_revision() == "0004"


def test_a_job_this_replica_queued_and_claimed_runs_in_the_trace_that_queued_it(
    shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = service_settings(
        tmp_path / "scratch", database_url=shared.database_url, artifact_uri=shared.artifact_uri
    )
    service = ServiceThread(settings, Telemetry(tracer_provider=provider)).start()
    try:
        with grpc.insecure_channel(service.target) as channel:
            done = Client(channel).train(
                penguins, kind="logistic_regression", target_column="species"
            )
        assert done.state == pb.JOB_STATE_SUCCEEDED, done.error.message
    finally:
        service.stop()
    spans = exporter.get_finished_spans()
    (job_span,) = [s for s in spans if s.name == "training.job"]
    (call,) = [s for s in spans if s.name.endswith("/CreateTrainingJob")]
    assert job_span.context.trace_id == call.context.trace_id
    assert job_span.attributes is not None
    assert job_span.attributes["mlops.job.state"] == "succeeded"


@pytest.mark.parametrize("backend", ["sqlite", "postgres+s3"])
def test_an_empty_database_migrates_to_the_schema_the_code_queries(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = sqlite_url(tmp_path / "metadata.sqlite")
    else:
        shared: Shared = request.getfixturevalue("shared")
        url = shared.database_url
    engine = create_engine(url)
    try:
        assert upgrade(engine) == "0004"
        with engine.connect() as conn:
            # Tables, columns, types, defaults and indexes of store/tables.py, nothing else.
            assert compare_metadata(MigrationContext.configure(conn), tables.metadata) == []
    finally:
        engine.dispose()
