"""The body of a training run, as a worker process runs it: Parquet in, artifact and result out."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from ml_service import dataset, model_input
from ml_service.domain import (
    COMMITTING,
    Curve,
    Evaluation,
    LearningCurve,
    Metrics,
    Progress,
    Timings,
)
from ml_service.errors import InvalidArgument
from ml_service.kinds import FitInput, get_kind
from ml_service.kinds.base import normalise_importance
from ml_service.training_contract import TrainingResult, TrainingTask

log = logging.getLogger(__name__)

#: Where each stage starts and ends on the overall fraction reported as progress. Saving
#: ends where the service's commit takes over: a bar at 100% in the worker went back to 98%.
STAGES = {
    "preparing": (0.0, 0.05),
    "fitting": (0.05, 0.9),
    "evaluating": (0.9, 0.95),
    "saving": (0.95, COMMITTING),
}
#: Most points kept of a curve or a learning curve: enough for its shape, small to store.
CURVE_POINTS = 101
#: Fewest seconds between two per-iteration reports, so a fast fit does not flood the pipe.
REPORT_INTERVAL = 0.1


def train(task: TrainingTask, report: Callable[[Progress], None]) -> TrainingResult:
    """Read, split, fit, evaluate and save; report progress at every stage.

    The task was checked by the core (request, hyperparameters and data), so nothing is
    checked again here but the split: a retrain of its parent's rows with another seed or
    holdout was not split before it was queued.
    """
    kind = get_kind(task.kind)
    runtime = kind.runtime
    progress = _Reporter(report)
    started = time.perf_counter()
    progress(Progress("preparing", 0.0))
    table = pq.read_table(task.dataset_path)
    plan = dataset.TrainingPlan(
        task.target_column,
        tuple((name, use, str(table.schema.field(name).type)) for name, use in task.features),
    )
    signature = dataset.build_signature(table, plan)
    n_classes = len(signature.classes)
    y = dataset.encode_target(table.column(plan.target), signature.classes)
    features = model_input.build(table, task.features)
    train_rows, holdout_rows = dataset.holdout_split(y, n_classes, task.holdout_fraction, task.seed)
    if len(holdout_rows) and dataset.constant_in(table, plan, train_rows, kind.feature_float):
        raise InvalidArgument.field(
            "holdout_fraction",
            dataset.holdout_took_the_differences(len(train_rows), task.holdout_fraction, task.seed),
        )
    eval_set = None
    if len(holdout_rows):
        eval_set = (features.take(holdout_rows), y[holdout_rows])
    prepared = time.perf_counter()

    with _thread_limit(task.threads):
        model = runtime.fit(
            FitInput(
                features=features.take(train_rows),
                y=y[train_rows],
                n_classes=n_classes,
                feature_kinds=model_input.internal_kinds([use for _, use in task.features]),
                params=task.hyperparameters,
                seed=task.seed,
                report=progress,
                eval_set=eval_set,
                threads=task.threads,
            )
        )
        fitted = time.perf_counter()
        progress(Progress("evaluating", 0.0))
        metrics, evaluation = None, None
        if eval_set is not None:
            proba = runtime.predict_proba(model, eval_set[0])
            metrics = holdout_metrics(eval_set[1], proba, n_classes)
            evaluation = holdout_evaluation(eval_set[1], proba, signature.classes)
        scores = runtime.feature_importance(model, features.column_names)
    evaluated = time.perf_counter()

    progress(Progress("saving", 0.0))
    runtime.save(model, task.artifact_path)
    sha256, size = _digest_and_sync(task.artifact_path)
    saved = time.perf_counter()
    notes = tuple(runtime.fit_notes(model))
    for note in notes:
        log.warning("training %s: %s", task.kind, note)
    progress(Progress("saving", 1.0))
    return TrainingResult(
        signature=signature,
        metrics=metrics,
        feature_importance=tuple(normalise_importance(plan.feature_names, scores)),
        train_rows=len(train_rows),
        holdout_rows=len(holdout_rows),
        timings=Timings(
            prepare_seconds=prepared - started,
            fit_seconds=fitted - prepared,
            evaluate_seconds=evaluated - fitted,
            save_seconds=saved - evaluated,
        ),
        library_versions=runtime.library_versions(),
        artifact_sha256=sha256,
        artifact_size=size,
        notes=notes,
        evaluation=evaluation,
        learning_curve=learning_curve(progress.losses),
    )


def holdout_metrics(
    y: npt.NDArray[np.int64], proba: npt.NDArray[np.float64], n_classes: int
) -> Metrics:
    """Score holdout probabilities; roc_auc is NaN when the holdout lacks a class."""
    labels = list(range(n_classes))
    predicted = proba.argmax(axis=1)
    with warnings.catch_warnings():
        # A class absent from a small holdout makes some scores ill-defined; they are still
        # the honest numbers for that holdout, so silence the warning, not the metric.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(y, predicted))
        f1 = float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0))
    if len(np.unique(y)) < n_classes:
        auc = math.nan
    elif n_classes == 2:
        auc = float(roc_auc_score(y, proba[:, 1]))
    else:
        auc = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
    return Metrics(
        accuracy=float(accuracy_score(y, predicted)),
        balanced_accuracy=balanced,
        f1_macro=f1,
        roc_auc=auc,
        log_loss=float(log_loss(y, proba, labels=labels)),
    )


def holdout_evaluation(
    y: npt.NDArray[np.int64], proba: npt.NDArray[np.float64], classes: Sequence[str]
) -> Evaluation:
    """Confusion matrix and ROC / precision-recall curves of the holdout, one-vs-rest."""
    n_classes = len(classes)
    matrix = confusion_matrix(y, proba.argmax(axis=1), labels=list(range(n_classes)))
    # Binary: the positive class says it all; multiclass: every class against the rest.
    positives = [1] if n_classes == 2 else range(n_classes)
    curves: list[Curve] = []
    for index in positives:
        truth = y == index
        if truth.all() or not truth.any():
            continue  # a class absent from the holdout (or alone in it) has no curve
        score = proba[:, index]
        fpr, tpr, _ = roc_curve(truth, score)
        precision, recall, _ = precision_recall_curve(truth, score)
        name = classes[index]
        area = float(roc_auc_score(truth, score))
        curves.append(Curve("roc", name, *_thinned(fpr, tpr), area))
        # Recall falls as the threshold rises; read left to right, it rises.
        ap = float(average_precision_score(truth, score))
        curves.append(Curve("pr", name, *_thinned(recall[::-1], precision[::-1]), ap))
    rows = tuple(tuple(int(count) for count in row) for row in matrix)
    return Evaluation(confusion_matrix=rows, curves=tuple(curves))


def learning_curve(losses: list[tuple[int, dict[str, float]]]) -> LearningCurve | None:
    """Losses by iteration, thinned to CURVE_POINTS; None when the fit reported none."""
    if not losses:
        return None
    picked = [losses[i] for i in _spread(len(losses), CURVE_POINTS)]
    names = sorted({name for _, metrics in picked for name in metrics})
    return LearningCurve(
        iterations=tuple(iteration for iteration, _ in picked),
        series={
            name: tuple(float(metrics.get(name, math.nan)) for _, metrics in picked)
            for name in names
        },
    )


def _spread(count: int, most: int) -> list[int]:
    # Evenly spaced indices, first and last included: a curve's shape, in few points.
    if count <= most:
        return list(range(count))
    return sorted({round(i) for i in np.linspace(0, count - 1, most)})


def _thinned(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    keep = _spread(len(x), CURVE_POINTS)
    return tuple(float(x[i]) for i in keep), tuple(float(y[i]) for i in keep)


class _Reporter:
    """Map each stage's own fraction onto the overall one and thin out per-iteration reports."""

    def __init__(self, report: Callable[[Progress], None]) -> None:
        self.report = report
        self.last = -math.inf
        #: Every iteration's losses as the fit reported them, before thinning.
        self.losses: list[tuple[int, dict[str, float]]] = []
        #: The last (iteration, total) reported while fitting.
        self.done: tuple[int, int] | None = None

    def __call__(self, progress: Progress) -> None:
        if progress.iteration and progress.metrics:
            self.losses.append((progress.iteration, dict(progress.metrics)))
        if progress.iteration:
            self.done = (progress.iteration, progress.total_iterations)
        elif self.done is not None:
            # Later stages say how many iterations ran, for watchers that saw none of them.
            progress = replace(progress, iteration=self.done[0], total_iterations=self.done[1])
        if progress.iteration and progress.stage == "fitting":
            now = time.monotonic()
            edge = progress.iteration in (1, progress.total_iterations)
            if not edge and now - self.last < REPORT_INTERVAL:
                return
            self.last = now
        start, end = STAGES[progress.stage]
        fraction = start + (end - start) * min(max(progress.fraction, 0.0), 1.0)
        self.report(replace(progress, fraction=round(fraction, 6)))


@contextmanager
def _thread_limit(threads: int | None) -> Iterator[None]:
    # BLAS and OpenMP pools (scikit-learn, numpy) ignore a thread_count argument.
    if threads is None:
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def _digest_and_sync(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        # Durable before the store commits the version that points at it.
        os.fsync(file.fileno())
    return digest.hexdigest(), size
