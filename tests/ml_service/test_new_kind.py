"""A new kind is one spec and one runtime module: proved with a kind that lives in the tests."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_service import dataset, kinds
from ml_service.core import ModelServiceCore
from ml_service.domain import VersionRecord
from ml_service.grpc import converters
from ml_service.kinds import KINDS, HyperparameterSpec, Kind, Runtime
from ml_service.predictor import ModelCache, Predictions, PredictLimits
from ml_service.store import Store
from ml_service.trainer import train
from ml_service.training_contract import TrainingTask
from mlops_client.ipc import from_ipc, to_ipc
from tests.conftest import service_settings


class MajorityKind(Kind):
    """Predicts the training class shares for every row."""

    name = "majority"
    display_name = "Majority"
    description = "Class frequencies of the training rows, whatever the inputs."
    artifact_suffix = ".json"
    runtime_module = "tests.ml_service.fake_runtime"
    hyperparameters = (
        HyperparameterSpec("smoothing", "float", 1.0, "Added to each class count.", minimum=0),
    )


@pytest.fixture
def registered() -> Iterator[Kind]:
    kind = MajorityKind()
    KINDS[kind.name] = kind
    yield kind
    del KINDS[kind.name]


def test_every_runtime_module_provides_the_runtime_protocol() -> None:
    for name in ("catboost_model", "logistic_model"):
        assert isinstance(importlib.import_module(f"ml_service.kinds.{name}"), Runtime)
    assert isinstance(importlib.import_module("tests.ml_service.fake_runtime"), Runtime)


async def test_a_kind_registered_in_a_test_is_listed_checked_trained_and_served(
    registered: Kind, tmp_path: Path
) -> None:
    core = ModelServiceCore(service_settings(tmp_path / "unused"))
    listed = [converters.model_kind(k).name for k in core.list_kinds()]
    assert "majority" in listed
    with pytest.raises(Exception, match="smoothing"):
        registered.resolve_hyperparameters({"smoothing": -1})
    kinds.preload()  # imports the new runtime like the others

    table = pa.table({"x": np.arange(40.0), "y": ["a"] * 30 + ["b"] * 10})
    pq.write_table(table, tmp_path / "data.parquet")
    plan = dataset.plan_training(table.schema, "y", [], {})
    with Store.open(tmp_path / "store") as store:
        task = TrainingTask(
            kind="majority",
            hyperparameters=registered.resolve_hyperparameters({"smoothing": 0}),
            dataset_path=str(tmp_path / "data.parquet"),
            target_column="y",
            features=tuple((name, use) for name, use, _ in plan.features),
            holdout_fraction=0.25,
            seed=0,
            artifact_path=store.scratch_path(".json"),
        )
        result = train(task, lambda progress: None)
        assert result.notes == ("this model ignores its inputs",)
        # One class for every row: right on every 'a', wrong on every 'b'.
        assert result.metrics is not None and result.metrics.balanced_accuracy == 0.5
        draft = VersionRecord(
            model_id="m-majority",
            version=0,
            kind="majority",
            hyperparameters=task.hyperparameters,
            training=result,
            created_at=datetime.now(UTC),
            artifact_key="",
            parent_version=0,
            dataset_digest="0" * 64,
            job_id="j-majority",
            holdout_fraction=0.25,
            seed=0,
        )
        version = store.commit_version(draft, task.artifact_path)
        predictions = Predictions(
            ModelCache(2, store.open_artifact), store.get_version, PredictLimits(100, 1000, 2**20)
        )
        answered, data = await predictions.predict("m-majority", 0, to_ipc(table.slice(0, 2)))

    assert answered == version.version == 1
    answer = from_ipc(data)
    assert answer.column("label").to_pylist() == ["a", "a"]
    # The training rows after a stratified 25% holdout: 22 of class a, 8 of class b.
    assert answer.column("proba_a").to_pylist() == pytest.approx([22 / 30, 22 / 30])
