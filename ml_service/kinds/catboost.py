"""CatBoost classifier: gradient-boosted trees with native categorical features.

This module holds what the server needs to list the kind and check requests; catboost
itself is imported from ml_service.kinds.catboost_model the first time a model is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ml_service.domain import FeatureKind
from ml_service.kinds.base import (
    MISSING_CATEGORY,
    EvalSet,
    HyperparameterSpec,
    Kind,
    Report,
    normalise_importance,
)

if TYPE_CHECKING:
    import catboost

_CLASS_WEIGHTS = {"none": None, "balanced": "Balanced", "sqrt_balanced": "SqrtBalanced"}


class CatBoostKind(Kind):
    """Gradient-boosted decision trees from the catboost library."""

    name = "catboost"
    display_name = "CatBoost classifier"
    description = (
        "Gradient-boosted decision trees (CatBoost). Categorical columns are used natively, "
        f"a missing category becomes the category '{MISSING_CATEGORY}'; "
        "missing numbers are handled by the trees."
    )
    artifact_suffix = ".cbm"
    hyperparameters = (
        HyperparameterSpec(
            "iterations", "int", 300, "Number of trees to build.", minimum=1, maximum=10000
        ),
        HyperparameterSpec(
            "learning_rate",
            "float",
            0.1,
            "Step size shrinking each tree's contribution.",
            # CatBoost 1.2 refuses rates up to about 1e-7 as "zero".
            minimum=1e-6,
            maximum=1,
        ),
        HyperparameterSpec("depth", "int", 6, "Depth of each tree.", minimum=1, maximum=16),
        HyperparameterSpec(
            "l2_leaf_reg",
            "float",
            3.0,
            "L2 regularisation of the leaf values; larger is smoother.",
            minimum=0,
            # CatBoost keeps these as 32-bit floats, which end near 3.4e38.
            maximum=1e38,
        ),
        HyperparameterSpec(
            "random_strength",
            "float",
            1.0,
            "Randomness added to split scores, against overfitting.",
            minimum=0,
            maximum=1e38,
        ),
        HyperparameterSpec(
            "class_weights",
            "string",
            "none",
            "Weigh classes equally ('none') or by inverse frequency.",
            choices=tuple(_CLASS_WEIGHTS),
        ),
        HyperparameterSpec(
            "verbose", "bool", False, "Write CatBoost's training log to the worker's output."
        ),
    )

    def library_versions(self) -> dict[str, str]:
        """Return the catboost and numpy versions."""
        from ml_service.kinds import catboost_model

        return catboost_model.library_versions()

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
    ) -> catboost.CatBoostClassifier:
        """Fit trees with progress per iteration; holdout losses too when eval_set is given."""
        from ml_service.kinds import catboost_model

        options = {
            "iterations": params["iterations"],
            "learning_rate": params["learning_rate"],
            "depth": params["depth"],
            "l2_leaf_reg": params["l2_leaf_reg"],
            "random_strength": params["random_strength"],
            "auto_class_weights": _CLASS_WEIGHTS[str(params["class_weights"])],
            "loss_function": "Logloss" if n_classes == 2 else "MultiClass",
            # Pin the classes so probabilities have one column per class index, always.
            "class_names": list(range(n_classes)),
            "random_seed": seed % 2**32,
            "thread_count": threads or -1,
            "logging_level": "Verbose" if params["verbose"] else "Silent",
        }
        return catboost_model.fit(features, y, feature_kinds, options, report, eval_set)

    def predict_proba(self, model: object, features: pa.Table) -> npt.NDArray[np.float64]:
        """Return class probabilities from the trees, for the columns named as in training."""
        from ml_service.kinds import catboost_model

        return catboost_model.predict_proba(model, features)

    def feature_importance(
        self, model: object, feature_names: list[str]
    ) -> list[tuple[str, float]]:
        """Return CatBoost's prediction-values-change importance per column."""
        from ml_service.kinds import catboost_model

        return normalise_importance(feature_names, catboost_model.feature_importance(model))

    def save(self, model: object, path: str) -> None:
        """Write CatBoost's native binary model format."""
        from ml_service.kinds import catboost_model

        catboost_model.save(model, path)

    def load(self, path: str) -> catboost.CatBoostClassifier:
        """Read a model in CatBoost's native binary format."""
        from ml_service.kinds import catboost_model

        return catboost_model.load(path)
