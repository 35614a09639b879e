"""Logistic regression: a scikit-learn pipeline of imputers, scaling, one-hot and a linear model."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
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
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.kinds.base import (
    MISSING_CATEGORY,
    EvalSet,
    HyperparameterSpec,
    Kind,
    Report,
    normalise_importance,
    to_frame,
)

_SOLVERS = ("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga")
# Which solver takes which penalty, as scikit-learn 1.9 checks it (linear_model/_logistic.py,
# _check_solver); tests/ml_service/test_kinds.py fits every pair to prove the table right.
_PENALTIES_BY_SOLVER = {
    "lbfgs": ("l2", "none"),
    "liblinear": ("l2", "l1"),
    "newton-cg": ("l2", "none"),
    "newton-cholesky": ("l2", "none"),
    "sag": ("l2", "none"),
    "saga": ("l2", "l1", "elasticnet", "none"),
}
_BINARY_ONLY_SOLVERS = ("liblinear",)

# Every type a fitted pipeline holds; skops refuses to load anything else.
TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
]


class LogisticRegressionKind(Kind):
    """Regularised logistic regression from scikit-learn, behind its preprocessing."""

    name = "logistic_regression"
    display_name = "Logistic regression"
    description = (
        "Linear model (scikit-learn LogisticRegression). Numeric columns: median imputation, "
        "then standard scaling. Categorical columns: missing values become the category "
        f"'{MISSING_CATEGORY}', then one-hot encoding; categories unseen in training are ignored."
    )
    artifact_suffix = ".skops"
    hyperparameters = (
        HyperparameterSpec(
            "C",
            "float",
            1.0,
            "Inverse regularisation strength; smaller means stronger regularisation.",
            minimum=0,
            exclusive_minimum=True,
        ),
        HyperparameterSpec(
            "penalty",
            "string",
            "l2",
            "Regularisation: 'l2', 'l1', 'elasticnet' (saga only) or 'none' (C is ignored).",
            choices=("l2", "l1", "elasticnet", "none"),
        ),
        HyperparameterSpec(
            "l1_ratio",
            "float",
            0.5,
            "Share of L1 in the elastic-net penalty; used only when penalty is 'elasticnet'.",
            minimum=0,
            maximum=1,
        ),
        HyperparameterSpec(
            "solver",
            "string",
            "lbfgs",
            "Optimisation algorithm; 'liblinear' handles two classes only.",
            choices=_SOLVERS,
        ),
        HyperparameterSpec(
            "max_iter",
            "int",
            1000,
            "Most iterations the solver may take.",
            minimum=1,
            maximum=100000,
        ),
        HyperparameterSpec(
            "class_weight",
            "string",
            "none",
            "Weigh classes equally ('none') or by inverse frequency ('balanced').",
            choices=("none", "balanced"),
        ),
    )

    def check_combination(self, params: Mapping[str, object]) -> list[FieldViolation]:
        """Refuse a penalty the solver does not implement."""
        solver, penalty = str(params["solver"]), str(params["penalty"])
        allowed = _PENALTIES_BY_SOLVER[solver]
        if penalty in allowed:
            return []
        takers = [name for name, penalties in _PENALTIES_BY_SOLVER.items() if penalty in penalties]
        return [
            FieldViolation(
                "hyperparameters.penalty",
                f"solver '{solver}' does not support penalty '{penalty}'; it accepts "
                f"{_quoted(allowed)}; penalty '{penalty}' needs solver {_quoted(takers, 'or')}",
            )
        ]

    def check_for_data(self, params: Mapping[str, object], n_classes: int) -> list[FieldViolation]:
        """Refuse liblinear for more than two classes."""
        solver = str(params["solver"])
        if n_classes <= 2 or solver not in _BINARY_ONLY_SOLVERS:
            return []
        others = [s for s in _SOLVERS if s not in _BINARY_ONLY_SOLVERS]
        return [
            FieldViolation(
                "hyperparameters.solver",
                f"solver '{solver}' handles two classes only and the target has {n_classes}; "
                f"use {_quoted(others, 'or')}",
            )
        ]

    def library_versions(self) -> dict[str, str]:
        """Return the versions of scikit-learn, skops, scipy and numpy."""
        return {name: version(name) for name in ("scikit-learn", "skops", "scipy", "numpy")}

    def fit(
        self,
        features: pa.Table,
        y: npt.NDArray[np.int64],
        n_classes: int,
        feature_kinds: Mapping[str, FeatureKind],
        params: Mapping[str, object],
        seed: int,
        report: Report,
        eval_set: EvalSet | None = None,
        *,
        threads: int | None = None,
    ) -> Pipeline:
        """Fit preprocessing, then the model; report after each, with losses at the end."""
        violations = self.check_for_data(params, n_classes)
        if violations:
            raise InvalidArgument.of(violations)
        frame = to_frame(features, feature_kinds, math.nan)
        preprocess = _preprocessor(features.column_names, feature_kinds)
        matrix = preprocess.fit_transform(frame)
        report(Progress(stage="fitting", fraction=0.2))
        model = _model(params, seed)
        with warnings.catch_warnings():
            # Running out of iterations still gives a usable model; fit_notes tells the user.
            warnings.simplefilter("ignore", ConvergenceWarning)
            # newton-cholesky meets a singular Hessian on one-hot columns without a penalty
            # and falls back to lbfgs by itself; the fit is fine.
            warnings.filterwarnings("ignore", message="The inner solver of .* stumbled upon")
            model.fit(matrix, y)
        pipeline = Pipeline([("preprocess", preprocess), ("model", model)])
        labels = list(range(n_classes))
        metrics = {"learn_Logloss": float(log_loss(y, model.predict_proba(matrix), labels=labels))}
        if eval_set is not None and len(eval_set[1]):
            holdout = self.predict_proba(pipeline, eval_set[0])
            metrics["holdout_Logloss"] = float(log_loss(eval_set[1], holdout, labels=labels))
        max_iter = int(params["max_iter"])  # type: ignore[call-overload]
        done = min(int(np.max(model.n_iter_)), max_iter)
        report(Progress("fitting", 1.0, iteration=done, total_iterations=max_iter, metrics=metrics))
        return pipeline

    def predict_proba(self, model: object, features: pa.Table) -> npt.NDArray[np.float64]:
        """Return class probabilities from the pipeline."""
        pipeline = _pipeline(model)
        kinds = _feature_kinds(pipeline)
        frame = to_frame(features.select(list(kinds)), kinds, math.nan)
        return np.asarray(pipeline.predict_proba(frame), dtype=np.float64)

    def feature_importance(
        self, model: object, feature_names: list[str]
    ) -> list[tuple[str, float]]:
        """Sum |coefficient| over each column's scaled or one-hot outputs, mean over classes."""
        pipeline = _pipeline(model)
        preprocess = pipeline.named_steps["preprocess"]
        weights = np.abs(pipeline.named_steps["model"].coef_).mean(axis=0)
        scores: dict[str, float] = {}
        for group, _, columns in preprocess.transformers_:
            if group not in ("numeric", "categorical"):
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
        return normalise_importance(feature_names, [scores[name] for name in feature_names])

    def save(self, model: object, path: str) -> None:
        """Write the pipeline with skops, which stores no pickles."""
        skops.io.dump(_pipeline(model), path)

    def load(self, path: str) -> Pipeline:
        """Read a pipeline, refusing any type outside TRUSTED_TYPES."""
        return _pipeline(skops.io.load(path, trusted=TRUSTED_TYPES))

    def fit_notes(self, model: object) -> list[str]:
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


def _feature_kinds(pipeline: Pipeline) -> dict[str, FeatureKind]:
    # The fitted pipeline knows its input columns and their groups; keep the training order.
    preprocess = pipeline.named_steps["preprocess"]
    groups = {"numeric": FeatureKind.NUMERIC, "categorical": FeatureKind.CATEGORICAL}
    kinds = {
        name: groups[group]
        for group, _, columns in preprocess.transformers_
        if group in groups
        for name in columns
    }
    return {name: kinds[name] for name in preprocess.feature_names_in_}


def _quoted(values: tuple[str, ...] | list[str], last: str = "and") -> str:
    quoted = [f"'{value}'" for value in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"
