"""The job manager on its own: the queue limit holds under concurrent submissions."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pyarrow as pa
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlops.v1 import training_service_pb2 as ts

from ml_service.domain import JobError, JobRecord, JobState, VersionRecord
from ml_service.errors import ResourceExhausted
from ml_service.executors.base import OnProgress, Outcome
from ml_service.job_manager import JobManager
from ml_service.live_jobs import LiveJob
from ml_service.store import Store
from tests.ml_service.helpers import Client

SLOW = {"iterations": 10000, "learning_rate": 0.001}


def record(n: int) -> JobRecord:
    """A queued job of its own model."""
    return JobRecord(
        job_id=f"j-{n}",
        model_id=f"m-{n}",
        kind="catboost",
        state=JobState.QUEUED,
        parent_version=0,
        requested_hyperparameters={},
        target_column="species",
        rows=1,
        dataset_digest="0" * 64,
        created_at=datetime.now(UTC),
    )


async def never_commits(job: LiveJob, result: dict[str, Any]) -> VersionRecord:
    raise AssertionError("no job runs in this test")


@pytest.mark.parametrize(("submissions", "limit", "slots"), [(30, 16, 1), (30, 3, 2)])
def test_concurrent_submissions_accept_exactly_the_limit(
    tmp_path: Path, submissions: int, limit: int, slots: int
) -> None:
    async def submit_all() -> list[BaseException | None]:
        with Store.open(tmp_path) as store:
            # Dispatchers are not started, so nothing leaves the queue while we submit.
            jobs = JobManager(
                store,
                never_commits,
                max_concurrent=slots,
                max_queued=limit,
                cancel_grace_seconds=1,
            )
            outcomes = await asyncio.gather(
                *(jobs.submit(record(n), {}) for n in range(submissions)),
                return_exceptions=True,
            )
            stored, _ = store.list_jobs(1000, "")
        assert len(stored) == limit + slots
        return [o if isinstance(o, BaseException) else None for o in outcomes]

    outcomes = asyncio.run(submit_all())
    refused = [o for o in outcomes if o is not None]
    # A free worker slot takes a job at once, so slots + limit jobs fit.
    assert len(outcomes) - len(refused) == limit + slots
    assert all(isinstance(o, ResourceExhausted) for o in refused)
    assert all(o.retry_after_seconds for o in refused if isinstance(o, ResourceExhausted))


def test_concurrent_create_calls_over_grpc_accept_exactly_the_limit(
    start_service: Any, penguins: pa.Table
) -> None:
    limit, slots = 4, 1
    service = start_service(max_queued_jobs=limit, max_concurrent_trainings=slots)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)

        def create(_: int) -> str | grpc.RpcError:
            try:
                job = client.create_job(
                    penguins, kind="catboost", target_column="species", hyperparameters=SLOW
                )
            except grpc.RpcError as error:
                return error
            return str(job.job_id)

        with ThreadPoolExecutor(30) as pool:
            outcomes = list(pool.map(create, range(30)))
        accepted = [o for o in outcomes if isinstance(o, str)]
        refused = [o for o in outcomes if isinstance(o, grpc.RpcError)]
        try:
            assert len(accepted) == limit + slots, outcomes
            for error in refused:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "queue is full" in error.details()
                status = rpc_status.from_call(error)
                assert status is not None
                retry = error_details_pb2.RetryInfo()
                assert any(d.Unpack(retry) for d in status.details)
                assert retry.retry_delay.seconds > 0
        finally:
            for job_id in accepted:
                client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job_id))


class StoppableRun:
    """A run that goes on until it is stopped, as a long training would."""

    def __init__(self) -> None:
        self.stopped = asyncio.Event()

    async def wait(self, on_progress: OnProgress) -> Outcome:
        await asyncio.wait_for(self.stopped.wait(), 30)
        return Outcome(error=JobError("ABORTED", "stopped"))

    async def stop(self) -> None:
        self.stopped.set()


class GatedExecutor:
    """An executor whose launch waits for the test's go, so a cancel can land meanwhile."""

    name = "gated"

    def __init__(self) -> None:
        self.launching = asyncio.Event()
        self.go = asyncio.Event()
        self.run = StoppableRun()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def dataset_location(self, digest: str) -> str:
        return digest

    async def launch(self, job_id: str, task: Any) -> StoppableRun:
        self.launching.set()
        await self.go.wait()
        return self.run


def test_a_job_cancelled_while_its_worker_starts_stops_that_worker(tmp_path: Path) -> None:
    async def cancel_during_launch() -> None:
        with Store.open(tmp_path) as store:
            executor = GatedExecutor()
            jobs = JobManager(
                store,
                never_commits,
                max_concurrent=1,
                max_queued=1,
                cancel_grace_seconds=1,
                executor=executor,
            )
            await jobs.start()
            try:
                await jobs.submit(record(1), SimpleNamespace(artifact_path="", dataset_path=""))
                await asyncio.wait_for(executor.launching.wait(), 10)
                assert (await jobs.cancel("j-1")).record.state is JobState.CANCELLED
                executor.go.set()
                # Else the worker trains to its end, holding the only slot.
                await asyncio.wait_for(executor.run.stopped.wait(), 5)
            finally:
                await jobs.close()

    asyncio.run(cancel_during_launch())
