"""CatBoost classifier: gradient-boosted trees with native categorical features.

This module holds what the server needs to list the kind and check requests; its runtime,
ml_service.kinds.catboost_model, imports catboost the first time a model is used.
"""

from __future__ import annotations

import pyarrow as pa

from ml_service.kinds.base import MISSING_CATEGORY, HyperparameterSpec, Kind

#: The class_weights choices, as CatBoost's auto_class_weights spells them.
CLASS_WEIGHTS = {"none": None, "balanced": "Balanced", "sqrt_balanced": "SqrtBalanced"}


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
    runtime_module = "ml_service.kinds.catboost_model"
    # CatBoost quantises features as 32-bit floats: 123456789 and 123456790 are one number,
    # 1e-50 is 0 and 1e39 infinite.
    feature_float = pa.float32()
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
            choices=tuple(CLASS_WEIGHTS),
        ),
        HyperparameterSpec(
            "verbose", "bool", False, "Write CatBoost's training log to the worker's output."
        ),
    )
