"""Logistic regression: a scikit-learn pipeline of imputers, scaling, one-hot and a linear model."""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
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
    category_text,
    normalise_importance,
    numeric_values,
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
        """Return class probabilities from the pipeline's fitted arrays, straight from Arrow."""
        return _compiled(_pipeline(model)).predict_proba(features)

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
        """Read a pipeline, refusing any type outside TRUSTED_TYPES, ready to predict."""
        pipeline = _pipeline(skops.io.load(path, trusted=TRUSTED_TYPES))
        # Compile now, so a served model's first prediction costs no more than the rest.
        _compiled(pipeline)
        return pipeline

    def fit_notes(self, model: object) -> list[str]:
        """Say so when the solver stopped at max_iter before converging."""
        estimator = _pipeline(model).named_steps["model"]
        if int(np.max(estimator.n_iter_)) < estimator.max_iter:
            return []
        return [
            f"the solver '{estimator.solver}' stopped at max_iter={estimator.max_iter} before "
            "converging; raise max_iter, lower C, or try another solver"
        ]


@dataclass(frozen=True, eq=False)
class _Category:
    """One categorical column: how to find its one-hot code, and each code's share of scores."""

    name: str
    # The encoder's categories, then null: a missing value has a code of its own.
    lookup: pc.SetLookupOptions
    # (categories + 2, scores): one row per category; then the row for a missing value (the
    # missing token's row if training saw it, else zeros); then zeros for a category unseen
    # in training, which OneHotEncoder(handle_unknown="ignore") encodes as all zeros.
    weights: npt.NDArray[np.float64]
    unseen: pa.Scalar

    def scores(self, column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.float64]:
        """Return each row's share of the scores: its category's coefficients."""
        codes = pc.index_in(category_text(column), options=self.lookup)
        if codes.null_count:
            codes = pc.fill_null(codes, self.unseen)
        return self.weights[np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.intp)]


@dataclass(frozen=True, eq=False)
class _Compiled:
    """A fitted pipeline reduced to the arrays its predict_proba uses, applied to Arrow.

    The arithmetic is scikit-learn's (impute, scale, one-hot, affine score, then the logistic
    function for two classes or softmax for more), without building a DataFrame or a one-hot
    matrix: a one-hot column times the coefficients is one row of them.
    """

    numeric: tuple[str, ...]
    fill: npt.NDArray[np.float64]  # (numeric,): the imputer's value for a missing number
    mean: npt.NDArray[np.float64]  # (numeric,)
    scale: npt.NDArray[np.float64]  # (numeric,)
    numeric_weights: npt.NDArray[np.float64]  # (numeric, scores)
    categorical: tuple[_Category, ...]
    intercept: npt.NDArray[np.float64]  # (scores,): one score for two classes

    def predict_proba(self, features: pa.Table) -> npt.NDArray[np.float64]:
        """Return class probabilities, shape (rows, classes), for the named columns."""
        rows = features.num_rows
        scores = np.repeat(self.intercept[np.newaxis, :], rows, axis=0)
        if self.numeric:
            x = np.empty((rows, len(self.numeric)), dtype=np.float64)
            for j, name in enumerate(self.numeric):
                x[:, j] = numeric_values(features.column(name), name)
            x = np.where(np.isnan(x), self.fill, x)
            x -= self.mean
            x /= self.scale
            scores += x @ self.numeric_weights
        for category in self.categorical:
            scores += category.scores(features.column(category.name))
        if scores.shape[1] == 1:
            # scikit-learn's binary case: p = expit(score) for class 1, 1 - p for class 0.
            # exp(-log(1 + exp(-s))) is expit without overflow warnings for large |s|.
            positive = np.exp(-np.logaddexp(0.0, -scores[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        # Multinomial: softmax, shifted by the row maximum as scikit-learn does.
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores


# Compiled forms by pipeline, dropped with the pipeline. Not an attribute on the pipeline:
# skops would write it into the artifact, whose format stays as it was.
_COMPILED: weakref.WeakKeyDictionary[Pipeline, _Compiled] = weakref.WeakKeyDictionary()


def _compiled(pipeline: Pipeline) -> _Compiled:
    compiled = _COMPILED.get(pipeline)
    if compiled is None:
        # Two threads may both compile a new pipeline; the results are equal.
        compiled = _COMPILED[pipeline] = _compile(pipeline)
    return compiled


def _compile(pipeline: Pipeline) -> _Compiled:
    preprocess = pipeline.named_steps["preprocess"]
    estimator = pipeline.named_steps["model"]
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    columns = {group: list(names) for group, _, names in preprocess.transformers_}
    numeric = columns.get("numeric", [])
    fill = mean = scale = np.zeros(0, dtype=np.float64)
    numeric_weights = np.zeros((0, len(intercept)), dtype=np.float64)
    if numeric:
        steps = preprocess.named_transformers_["numeric"].named_steps
        imputer, scaler = steps["impute"], steps["scale"]
        if not (scaler.with_mean and scaler.with_std and math.isnan(imputer.missing_values)):
            raise TypeError("the numeric steps are not the ones this kind fits")
        fill = np.asarray(imputer.statistics_, dtype=np.float64)
        mean = np.asarray(scaler.mean_, dtype=np.float64)
        scale = np.asarray(scaler.scale_, dtype=np.float64)
        numeric_weights = np.ascontiguousarray(coef[:, preprocess.output_indices_["numeric"]].T)
    categorical: list[_Category] = []
    if names := columns.get("categorical", []):
        steps = preprocess.named_transformers_["categorical"].named_steps
        imputer, encoder = steps["impute"], steps["onehot"]
        if not (
            imputer.strategy == "constant"
            and encoder.handle_unknown == "ignore"
            and encoder.drop is None
            and encoder.min_frequency is None
            and encoder.max_categories is None
        ):
            raise TypeError("the categorical steps are not the ones this kind fits")
        weights = coef[:, preprocess.output_indices_["categorical"]].T
        start = 0
        for name, missing, values in zip(
            names, imputer.statistics_, encoder.categories_, strict=True
        ):
            known = [str(value) for value in values]
            own = weights[start : start + len(known)]
            start += len(known)
            zeros = np.zeros((1, len(intercept)), dtype=np.float64)
            on_missing = own[[known.index(missing)]] if missing in known else zeros
            categorical.append(
                _Category(
                    name=name,
                    lookup=pc.SetLookupOptions(
                        pa.array([*known, None], pa.string()), skip_nulls=False
                    ),
                    weights=np.vstack([own, on_missing, zeros]),
                    unseen=pa.scalar(len(known) + 1, pa.int32()),
                )
            )
    return _Compiled(
        numeric=tuple(numeric),
        fill=fill,
        mean=mean,
        scale=scale,
        numeric_weights=numeric_weights,
        categorical=tuple(categorical),
        intercept=intercept,
    )


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


def _quoted(values: tuple[str, ...] | list[str], last: str = "and") -> str:
    quoted = [f"'{value}'" for value in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"
