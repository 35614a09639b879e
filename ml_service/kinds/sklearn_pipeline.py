"""Logistic regression's scikit-learn pipeline: fit, score, importance, save and load.

The kind's runtime, ml_service.kinds.logistic_model, delegates here for fitting and saving;
it is imported only where a model is fitted (the training workers) or an artifact is in a
layout the server's own reader does not know, so the server runs without scikit-learn,
scipy or skops.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from importlib.metadata import version

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_service.domain import FeatureKind, Progress
from ml_service.kinds.base import MISSING_CATEGORY, FitInput, to_frame
from ml_service.kinds.compiled_logistic import compiled
from ml_service.kinds.skops_archive import TRUSTED_TYPES

__all__ = [
    "TRUSTED_TYPES",
    "feature_importance",
    "fit",
    "fit_notes",
    "library_versions",
    "load",
    "predict_proba",
    "save",
]


def library_versions() -> dict[str, str]:
    """Return the versions of scikit-learn, skops, scipy and numpy."""
    return {name: version(name) for name in ("scikit-learn", "skops", "scipy", "numpy")}


def fit(data: FitInput) -> Pipeline:
    """Fit preprocessing, then the model; report after each, with losses at the end."""
    features, y, n_classes, params, report = (
        data.features,
        data.y,
        data.n_classes,
        data.params,
        data.report,
    )
    frame = to_frame(features, data.feature_kinds, math.nan)
    preprocess = _preprocessor(features.column_names, data.feature_kinds)
    matrix = preprocess.fit_transform(frame)
    report(Progress(stage="fitting", fraction=0.2))
    model = _model(params, data.seed)
    with warnings.catch_warnings():
        # Running out of iterations still gives a usable model; fit_notes tells the user.
        warnings.simplefilter("ignore", ConvergenceWarning)
        # newton-cholesky meets a singular Hessian on one-hot columns without a penalty
        # and falls back to lbfgs by itself; the fit is fine.
        warnings.filterwarnings("ignore", message="The inner solver of .* stumbled upon")
        # Many classes for few rows was allowed on purpose (allow_many_classes) by then.
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        model.fit(matrix, y)
    pipeline = Pipeline([("preprocess", preprocess), ("model", model)])
    labels = list(range(n_classes))
    metrics = {"learn_Logloss": float(log_loss(y, model.predict_proba(matrix), labels=labels))}
    eval_set = data.eval_set
    if eval_set is not None and len(eval_set[1]):
        holdout = predict_proba(pipeline, eval_set[0])
        metrics["holdout_Logloss"] = float(log_loss(eval_set[1], holdout, labels=labels))
    max_iter = int(params["max_iter"])  # type: ignore[call-overload]
    done = min(int(np.max(model.n_iter_)), max_iter)
    report(Progress("fitting", 1.0, iteration=done, total_iterations=max_iter, metrics=metrics))
    return pipeline


def predict_proba(model: object, features: pa.Table) -> npt.NDArray[np.float64]:
    """Return class probabilities from the pipeline's fitted arrays, straight from Arrow."""
    return compiled(_pipeline(model)).predict_proba(features)


def feature_importance(model: object, names: Sequence[str]) -> list[float]:
    """Sum |coefficient| over each column's scaled or one-hot outputs, mean over classes."""
    pipeline = _pipeline(model)
    preprocess = pipeline.named_steps["preprocess"]
    weights = np.abs(pipeline.named_steps["model"].coef_).mean(axis=0)
    scores: dict[str, float] = {}
    for group, _, columns in preprocess.transformers_:
        # A group with no columns (an all-numeric or all-categorical table) is never fitted.
        if group not in ("numeric", "categorical") or not len(columns):
            continue
        part = weights[preprocess.output_indices_[group]]
        if group == "numeric":
            widths = [1] * len(columns)
        else:
            encoder = preprocess.named_transformers_[group].named_steps["onehot"]
            widths = [len(categories) for categories in encoder.categories_]
        bounds = np.cumsum([0, *widths])
        for name, start, end in zip(columns, bounds[:-1], bounds[1:], strict=True):
            scores[name] = float(part[start:end].sum())
    return [scores[name] for name in names]


def save(model: object, path: str) -> None:
    """Write the pipeline with skops, which stores no pickles."""
    skops.io.dump(_pipeline(model), path)


def load(path: str) -> Pipeline:
    """Read a pipeline, refusing any type outside TRUSTED_TYPES, ready to predict."""
    pipeline = _pipeline(skops.io.load(path, trusted=TRUSTED_TYPES))
    # Compile now, so a served model's first prediction costs no more than the rest.
    compiled(pipeline)
    return pipeline


def fit_notes(model: object) -> list[str]:
    """Say so when the solver stopped at max_iter before converging."""
    estimator = _pipeline(model).named_steps["model"]
    if int(np.max(estimator.n_iter_)) < estimator.max_iter:
        return []
    return [
        f"the solver '{estimator.solver}' stopped at max_iter={estimator.max_iter} before "
        "converging; raise max_iter, lower C, or try another solver"
    ]


def _model(params: Mapping[str, object], seed: int) -> LogisticRegression:
    # scikit-learn 1.8 deprecated `penalty` (removal in 1.10): it is expressed through
    # l1_ratio, and "no penalty" through C=inf. Translating here keeps the API stable.
    penalty = str(params["penalty"])
    l1_ratio = {"l2": 0.0, "l1": 1.0, "none": 0.0}.get(penalty, params["l1_ratio"])
    return LogisticRegression(
        C=math.inf if penalty == "none" else params["C"],
        l1_ratio=l1_ratio,
        solver=str(params["solver"]),
        max_iter=params["max_iter"],
        class_weight=None if params["class_weight"] == "none" else "balanced",
        random_state=seed % 2**32,
    )


def _preprocessor(names: list[str], kinds: Mapping[str, FeatureKind]) -> ColumnTransformer:
    numeric = [name for name in names if kinds[name] is FeatureKind.NUMERIC]
    categorical = [name for name in names if kinds[name] is FeatureKind.CATEGORICAL]
    # keep_empty_features: a column empty in the training rows still gets its output, so
    # outputs map one-to-one onto columns for feature importance.
    numeric_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical_steps = Pipeline(
        [
            (
                "impute",
                SimpleImputer(
                    strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True
                ),
            ),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    return ColumnTransformer(
        [("numeric", numeric_steps, numeric), ("categorical", categorical_steps, categorical)],
        remainder="drop",
    )


def _pipeline(model: object) -> Pipeline:
    if not isinstance(model, Pipeline):
        raise TypeError(f"expected a scikit-learn Pipeline, got {type(model).__name__}")
    return model
