"""The job manager on its own: the queue limit holds under concurrent submissions."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlops.v1 import training_service_pb2 as ts

from ml_service.domain import JobRecord, JobState, VersionRecord
from ml_service.errors import ResourceExhausted
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
                status = rpc_status.from_call(error)  # type: ignore[arg-type]
                assert status is not None
                retry = error_details_pb2.RetryInfo()
                assert any(d.Unpack(retry) for d in status.details)
                assert retry.retry_delay.seconds > 0
        finally:
            for job_id in accepted:
                client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job_id))
