"""Logistic regression: a scikit-learn pipeline of imputers, scaling, one-hot and a linear model.

This module holds what the server needs to list the kind and check requests; scikit-learn
and skops are imported from ml_service.kinds.sklearn_pipeline the first time a model is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ml_service.domain import FeatureKind
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.kinds.base import (
    MISSING_CATEGORY,
    EvalSet,
    HyperparameterSpec,
    Kind,
    Report,
    normalise_importance,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

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
    # Standard scaling squares each value: beyond ~1e154 the variance overflows to infinity,
    # and a margin keeps the sum over millions of rows finite too.
    max_feature_magnitude = 1e150
    hyperparameters = (
        HyperparameterSpec(
            "C",
            "float",
            1.0,
            "Inverse regularisation strength; smaller means stronger regularisation.",
            # Below this the 'sag' solver fails and 'liblinear' does not finish (scikit-learn 1.9).
            minimum=1e-10,
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
        from ml_service.kinds import sklearn_pipeline

        return sklearn_pipeline.fit(
            features, y, n_classes, feature_kinds, params, seed, report, eval_set
        )

    def predict_proba(self, model: object, features: pa.Table) -> npt.NDArray[np.float64]:
        """Return class probabilities from the pipeline's fitted arrays, straight from Arrow."""
        from ml_service.kinds import sklearn_pipeline

        return sklearn_pipeline.predict_proba(model, features)

    def feature_importance(
        self, model: object, feature_names: list[str]
    ) -> list[tuple[str, float]]:
        """Sum |coefficient| over each column's scaled or one-hot outputs, mean over classes."""
        from ml_service.kinds import sklearn_pipeline

        scores = sklearn_pipeline.feature_importance(model, feature_names)
        return normalise_importance(feature_names, scores)

    def save(self, model: object, path: str) -> None:
        """Write the pipeline with skops, which stores no pickles."""
        from ml_service.kinds import sklearn_pipeline

        sklearn_pipeline.save(model, path)

    def load(self, path: str) -> Pipeline:
        """Read a pipeline, refusing any type outside TRUSTED_TYPES, ready to predict."""
        from ml_service.kinds import sklearn_pipeline

        return sklearn_pipeline.load(path)

    def fit_notes(self, model: object) -> list[str]:
        """Say so when the solver stopped at max_iter before converging."""
        from ml_service.kinds import sklearn_pipeline

        return sklearn_pipeline.fit_notes(model)


def _quoted(values: tuple[str, ...] | list[str], last: str = "and") -> str:
    quoted = [f"'{value}'" for value in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"
