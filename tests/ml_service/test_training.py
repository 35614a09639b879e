"""The training body a worker runs: quality on real data, progress, artifacts, errors."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ml_service import dataset, training_contract
from ml_service.dataset import holdout_split
from ml_service.domain import COMMITTING, Progress
from ml_service.kinds import get_kind
from ml_service.trainer import holdout_metrics, train
from ml_service.training_contract import TrainingResult, TrainingTask


def run(
    tmp_path: Path,
    table: pa.Table,
    target: str,
    kind: str,
    hyperparameters: dict[str, Any] | None = None,
    holdout_fraction: float = 0.2,
) -> tuple[TrainingResult, list[Progress], TrainingTask]:
    """Write the table as Parquet, train on it and return the result, progress and task."""
    data = tmp_path / "data.parquet"
    pq.write_table(table, data)
    # The core plans and checks; the worker trusts the task it gets.
    plan = dataset.plan_training(table.schema, target, [], {})
    sent = TrainingTask(
        kind=kind,
        hyperparameters=get_kind(kind).resolve_hyperparameters(hyperparameters or {}),
        dataset_path=str(data),
        target_column=target,
        features=tuple((name, use) for name, use, _ in plan.features),
        holdout_fraction=holdout_fraction,
        seed=0,
        artifact_path=str(tmp_path / f"model{get_kind(kind).artifact_suffix}"),
        threads=2,
    )
    # The worker receives its task as JSON and sends its result back so: prove both trips.
    task = training_contract.decode_task(training_contract.encode(sent))
    assert task == sent
    seen: list[Progress] = []
    result = train(task, seen.append)
    # Compared as text: NaN (an undefined roc_auc) is never equal to itself.
    sent_back = training_contract.encode(result)
    assert training_contract.encode(training_contract.decode_result(sent_back)) == sent_back
    return result, seen, task


@pytest.mark.parametrize(
    ("kind", "hyperparameters", "least"),
    [
        ("catboost", {"iterations": 150, "learning_rate": 0.2}, 0.85),
        ("logistic_regression", {}, 0.8),
    ],
)
def test_adult_is_learned(
    tmp_path: Path, adult: pa.Table, kind: str, hyperparameters: dict[str, Any], least: float
) -> None:
    result, _, _ = run(tmp_path, adult, "income", kind, hyperparameters=hyperparameters)
    assert result.metrics is not None
    assert result.metrics.accuracy > least
    assert result.metrics.roc_auc > 0.85
    assert result.train_rows + result.holdout_rows == adult.num_rows
    assert result.holdout_rows == pytest.approx(0.2 * adult.num_rows, abs=2)
    assert result.signature.classes == ("<=50K", ">50K")
    assert sum(value for _, value in result.feature_importance) == pytest.approx(100)


@pytest.mark.parametrize("kind", ["catboost", "logistic_regression"])
def test_penguins_three_classes_are_learned(tmp_path: Path, penguins: pa.Table, kind: str) -> None:
    result, _, _ = run(tmp_path, penguins, "species", kind, hyperparameters={})
    assert result.metrics is not None
    assert result.metrics.accuracy > 0.9
    assert result.metrics.f1_macro > 0.9
    assert 0.9 < result.metrics.roc_auc <= 1.0
    assert result.metrics.log_loss < 0.5


@pytest.mark.parametrize("kind", ["catboost", "logistic_regression"])
def test_integer_labels_come_back_as_integers(
    tmp_path: Path, penguins: pa.Table, kind: str
) -> None:
    codes = {"Adelie": 1, "Chinstrap": 2, "Gentoo": 10}
    species = pa.array([codes[name] for name in penguins.column("species").to_pylist()], pa.int64())
    table = penguins.set_column(0, "species", species)
    result, _, task = run(tmp_path, table, "species", kind, hyperparameters={})
    assert result.signature.classes == ("1", "10", "2")
    assert result.signature.target_arrow_type == "int64"
    labels = predict_labels(task, result, table)
    assert labels.type == pa.int64()
    assert pc.mean(pc.equal(labels, species)).as_py() > 0.9


@pytest.mark.parametrize("kind", ["catboost", "logistic_regression"])
def test_boolean_labels_come_back_as_booleans(
    tmp_path: Path, bank_small: pa.Table, kind: str
) -> None:
    subscribed = pc.equal(bank_small.column("y"), "yes")
    table = bank_small.drop_columns(["y"]).append_column("subscribed", subscribed)
    params = {"iterations": 100} if kind == "catboost" else {}
    result, _, task = run(tmp_path, table, "subscribed", kind, hyperparameters=params)
    assert result.signature.classes == ("false", "true")
    assert result.metrics is not None and result.metrics.accuracy > 0.85
    labels = predict_labels(task, result, table)
    assert labels.type == pa.bool_()


def predict_labels(task: TrainingTask, result: TrainingResult, table: pa.Table) -> pa.Array:
    """Load the artifact and predict labels in the target's own type."""
    kind = get_kind(task.kind)
    model = kind.runtime.load(task.artifact_path)
    names = [column.name for column in result.signature.features]
    proba = kind.runtime.predict_proba(model, table.select(names))
    return dataset.decode_labels(proba.argmax(axis=1), result.signature)


def test_progress_moves_forward_through_every_stage(tmp_path: Path, penguins: pa.Table) -> None:
    _, seen, _ = run(tmp_path, penguins, "species", "catboost", hyperparameters={"iterations": 40})
    stages = [p.stage for p in seen]
    assert list(dict.fromkeys(stages)) == ["preparing", "fitting", "evaluating", "saving"]
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0
    assert fractions[-1] == COMMITTING  # where the service's commit takes over, up to 1.0
    iterations = [p.iteration for p in seen if p.stage == "fitting"]
    assert iterations[0] == 1 and iterations[-1] == 40
    assert iterations == sorted(set(iterations))
    losses = [p.metrics["holdout_MultiClass"] for p in seen if p.stage == "fitting"]
    assert losses[-1] < losses[0]


def test_artifact_digest_and_size_match_the_file(tmp_path: Path, penguins: pa.Table) -> None:
    result, _, task = run(tmp_path, penguins, "species", "logistic_regression")
    content = Path(task.artifact_path).read_bytes()
    assert result.artifact_size == len(content)
    assert result.artifact_sha256 == hashlib.sha256(content).hexdigest()
    assert result.library_versions["scikit-learn"].startswith("1.9")
    assert result.timings.fit_seconds > 0


def test_no_holdout_means_no_metrics(tmp_path: Path, penguins: pa.Table) -> None:
    result, _, _ = run(
        tmp_path,
        penguins,
        "species",
        "catboost",
        hyperparameters={"iterations": 10},
        holdout_fraction=0,
    )
    assert result.metrics is None
    assert (result.train_rows, result.holdout_rows) == (penguins.num_rows, 0)


def test_a_class_with_one_row_still_trains(tmp_path: Path, penguins: pa.Table) -> None:
    rare = pa.table({"species": ["Rare"], **{n: [None] for n in penguins.column_names[1:]}})
    table = pa.concat_tables([penguins, rare.cast(penguins.schema)])
    result, _, _ = run(tmp_path, table, "species", "logistic_regression")
    assert result.signature.classes == ("Adelie", "Chinstrap", "Gentoo", "Rare")
    assert result.metrics is not None and math.isnan(result.metrics.roc_auc)


def test_a_raising_reporter_cancels_the_run(tmp_path: Path, adult: pa.Table) -> None:
    class CancelledError(Exception):
        pass

    def report(progress: Progress) -> None:
        if progress.iteration >= 2:
            raise CancelledError

    data = tmp_path / "data.parquet"
    pq.write_table(adult.slice(0, 2000), data)
    artifact = tmp_path / "model.cbm"
    params = get_kind("catboost").resolve_hyperparameters({"iterations": 5000})
    plan = dataset.plan_training(adult.schema, "income", [], {})
    features = tuple((name, use) for name, use, _ in plan.features)
    task = TrainingTask("catboost", params, str(data), "income", features, 0.2, 0, str(artifact))
    with pytest.raises(CancelledError):
        train(task, report)
    assert not artifact.exists()


def test_workers_fork_with_the_libraries_that_fit_already_imported() -> None:
    """The forkserver preloads them, so a job does not spend seconds importing them first."""
    # The forkserver set up as the local executor sets it up; the worker reports by exit code.
    script = textwrap.dedent(
        """
        import multiprocessing, sys
        import ml_service.executors.local
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(ml_service.executors.local.PRELOAD)
        check = "import sys; sys.exit(0 if {} <= set(sys.modules) else 1)"
        modules = {"catboost", "sklearn", "skops", "pandas", "ml_service.trainer"}
        worker = context.Process(target=exec, args=(check.format(modules), {}))
        worker.start()
        worker.join()
        sys.exit(worker.exitcode)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


def test_holdout_split_is_stratified_and_repeatable() -> None:
    y = np.repeat(np.arange(3), [600, 300, 100]).astype(np.int64)
    train_rows, holdout_rows = holdout_split(y, 3, 0.25, seed=7)
    assert np.bincount(y[holdout_rows]).tolist() == [150, 75, 25]
    assert sorted([*train_rows, *holdout_rows]) == list(range(len(y)))
    again = holdout_split(y, 3, 0.25, seed=7)
    assert np.array_equal(again[1], holdout_rows)
    assert not np.array_equal(holdout_split(y, 3, 0.25, seed=8)[1], holdout_rows)


def test_holdout_split_keeps_every_class_in_training() -> None:
    y = np.array([0, 0, 0, 1, 2, 2], dtype=np.int64)
    train_rows, _ = holdout_split(y, 3, 0.8, seed=0)
    assert set(y[train_rows].tolist()) == {0, 1, 2}


def test_metrics_on_a_holdout_without_some_class() -> None:
    y = np.array([0, 0, 1], dtype=np.int64)
    proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    metrics = holdout_metrics(y, proba, 3)
    assert metrics.accuracy == 1.0
    assert math.isnan(metrics.roc_auc)
    assert metrics.log_loss > 0


def test_binary_holdout_evaluation_and_learning_curve(tmp_path: Path, adult: pa.Table) -> None:
    params = {"iterations": 60}
    result, _, _ = run(tmp_path, adult.slice(0, 4000), "income", "catboost", hyperparameters=params)

    evaluation = result.evaluation
    assert evaluation is not None and result.metrics is not None
    matrix = np.array(evaluation.confusion_matrix)
    assert matrix.shape == (2, 2) and matrix.sum() == result.holdout_rows
    assert np.trace(matrix) / matrix.sum() == pytest.approx(result.metrics.accuracy)
    roc, pr = evaluation.curves
    assert (roc.kind, roc.class_name, pr.kind) == ("roc", ">50K", "pr")
    assert roc.area == pytest.approx(result.metrics.roc_auc)
    assert roc.x[0] == 0.0 and roc.x[-1] == 1.0 and list(roc.x) == sorted(roc.x)
    assert len(roc.x) <= 101 and len(pr.x) == len(pr.y) <= 101

    curve = result.learning_curve
    assert curve is not None
    assert curve.iterations[0] == 1 and curve.iterations[-1] == 60
    holdout = curve.series["holdout_Logloss"]
    assert len(holdout) == len(curve.iterations) and holdout[-1] < holdout[0]


def test_multiclass_evaluation_has_curves_per_class(tmp_path: Path, penguins: pa.Table) -> None:
    result, _, _ = run(tmp_path, penguins, "species", "logistic_regression")

    assert result.evaluation is not None
    assert [(c.kind, c.class_name) for c in result.evaluation.curves] == [
        (kind, name) for name in ("Adelie", "Chinstrap", "Gentoo") for kind in ("roc", "pr")
    ]
    assert result.learning_curve is not None and "holdout_Logloss" in result.learning_curve.series


def test_no_holdout_means_no_evaluation(tmp_path: Path, penguins: pa.Table) -> None:
    result, _, _ = run(tmp_path, penguins, "species", "logistic_regression", holdout_fraction=0)
    assert result.evaluation is None
