"""Logistic regression: a scikit-learn pipeline of imputers, scaling, one-hot and a linear model.

This module holds what the server needs to list the kind and check requests; its runtime,
ml_service.kinds.logistic_model, serves models from their arrays with numpy and imports
scikit-learn and skops only to fit them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ml_service.errors import FieldViolation
from ml_service.kinds.base import MISSING_CATEGORY, HyperparameterSpec, Kind

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
    runtime_module = "ml_service.kinds.logistic_model"
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


def _quoted(values: tuple[str, ...] | list[str], last: str = "and") -> str:
    quoted = [f"'{value}'" for value in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"
