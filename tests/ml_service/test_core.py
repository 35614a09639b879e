"""The use cases on the core itself, with no gRPC server: the one door every transport uses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ml_service.core import ModelServiceCore
from ml_service.domain import JobState
from ml_service.errors import FailedPrecondition, InvalidArgument, NotFound
from ml_service.live_jobs import JobView
from ml_service.memory import IDLE_SECONDS
from ml_service.training_requests import RetrainRequest, TrainRequest
from mlops_client.ipc import from_ipc, table_chunks, to_ipc
from tests.conftest import service_settings


async def pieces(table: pa.Table | None) -> AsyncIterator[bytes]:
    if table is not None:
        for piece in table_chunks(table, 64 * 1024):
            yield piece


async def finished(core: ModelServiceCore, view: JobView) -> JobView:
    seen = [view]
    async for update in core.watch_job(view.record.job_id):
        seen.append(update)
    return seen[-1]


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[ModelServiceCore]:
    opened = ModelServiceCore(service_settings(tmp_path / "store"))
    await opened.open()
    yield opened
    await opened.close()


def table(rows: int = 90) -> pa.Table:
    rng = np.random.default_rng(2)
    x = rng.normal(size=rows)
    return pa.table(
        {"x": x, "colour": ["red", "blue", "green"] * (rows // 3), "y": np.where(x > 0, "a", "b")}
    )


async def test_train_predict_retrain_delete(core: ModelServiceCore) -> None:
    request = TrainRequest(kind="logistic_regression", target_column="y", name="signs")
    done = await finished(core, await core.create_training_job(request, pieces(table())))

    assert done.record.state is JobState.SUCCEEDED
    assert done.result is not None and done.result.version == 1
    assert (await core.get_job(done.record.job_id)).result == done.result
    version, answer = await core.predict(done.record.model_id, 0, to_ipc(table().slice(0, 3)))
    assert version == 1
    assert from_ipc(answer).column_names == ["label", "proba_a", "proba_b"]

    # No data: the parent's data, columns and settings, with one change.
    again = RetrainRequest(model_id=done.record.model_id, hyperparameters={"C": 0.5})
    second = await finished(core, await core.retrain(again, pieces(None)))
    assert second.result is not None and second.result.version == 2
    assert second.result.hyperparameters["C"] == 0.5
    assert second.result.dataset_digest == done.result.dataset_digest

    assert await core.delete_model(done.record.model_id) == 2
    with pytest.raises(NotFound):
        await core.predict(done.record.model_id, 0, to_ipc(table().slice(0, 1)))


async def test_memory_freed_by_a_training_upload_is_given_back_once_it_is_over(
    core: ModelServiceCore,
) -> None:
    trimmer = core.predictions.trimmer
    before = trimmer.releases
    request = TrainRequest(kind="logistic_regression", target_column="y", name="upload")
    view = await core.create_training_job(request, pieces(table(3000)))
    assert trimmer.releases == before  # not at once: more work may follow
    # The timer was armed on this loop when the upload ended, so it fires before this wakes.
    await asyncio.sleep(IDLE_SECONDS + 0.5)
    assert trimmer.releases == before + 1
    await finished(core, view)


async def test_stream_predict_answers_in_order(core: ModelServiceCore) -> None:
    request = TrainRequest(kind="catboost", target_column="y", hyperparameters={"iterations": 5})
    done = await finished(core, await core.create_training_job(request, pieces(table())))
    rows = table().drop_columns(["y"])

    async def batches() -> AsyncIterator[bytes]:
        for start in (0, 30, 60):
            yield to_ipc(rows.slice(start, 30))

    answers = [a async for a in core.stream_predict(done.record.model_id, 0, batches())]
    assert [(index, continued) for index, _, _, continued in answers] == [
        (0, False),
        (1, False),
        (2, False),
    ]
    assert sum(from_ipc(data).num_rows for _, _, data, _ in answers) == 90


async def test_data_checks_happen_once_before_queueing(core: ModelServiceCore) -> None:
    # liblinear fits two classes only: the core says so before a worker ever starts.
    three = pa.table({"x": np.arange(30.0), "y": ["a", "b", "c"] * 10})
    request = TrainRequest(
        kind="logistic_regression", target_column="y", hyperparameters={"solver": "liblinear"}
    )
    with pytest.raises(InvalidArgument) as error:
        await core.create_training_job(request, pieces(three))

    assert [v.field for v in error.value.violations] == ["hyperparameters.solver"]
    jobs, _ = await core.list_jobs(10, "")
    assert jobs == []


async def test_a_model_being_trained_cannot_be_deleted(core: ModelServiceCore) -> None:
    slow = {"iterations": 10000, "learning_rate": 0.001}
    request = TrainRequest(kind="catboost", target_column="y", hyperparameters=slow)
    view = await core.create_training_job(request, pieces(table(3000)))

    with pytest.raises(FailedPrecondition):
        await core.delete_model(view.record.model_id)
    cancelled = await core.cancel_job(view.record.job_id)
    assert cancelled.record.state is JobState.CANCELLED
