"""What the libraries themselves predict for a table: the matrix's yardstick for the service.

Written from the service's documented conventions (README, the kinds' descriptions, the
architecture notes), deliberately without calling its fit code, or a bug there would be
copied into the expectation:

- integer, float and boolean columns are numeric (float64, missing and NaN as NaN, true 1);
  string, large_string and dictionary columns are categorical text; a missing category is
  the category "__missing__";
- the classes are the distinct label texts (Arrow's cast to string) in sorted order, and the
  models are fitted on each row's class index;
- CatBoost: the kind's defaults (learning rate 0.1, l2_leaf_reg 3, random_strength 1),
  Logloss for two classes else MultiClass, classes pinned to 0..k-1, the job's seed and
  thread count;
- logistic regression: numeric median imputation and standard scaling, categorical
  imputation to "__missing__" and one-hot (unknowns ignored), numeric outputs first; penalty
  "l2" expressed as l1_ratio 0, the job's seed as random_state, BLAS limited to its threads.

The libraries see the columns as f0..fn: names do not change the maths, and a service that
breaks on a user's name must show it rather than hide it behind a reference that breaks too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

MISSING_CATEGORY = "__missing__"
CATBOOST_DEFAULTS = {"learning_rate": 0.1, "l2_leaf_reg": 3.0, "random_strength": 1.0}


def as_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Return a column as strings, nulls (and NaN) as null."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    return pc.cast(column, pa.string())


def class_texts(column: pa.ChunkedArray) -> list[str]:
    """Return the classes of a label column: its distinct texts, sorted."""
    return sorted(pc.unique(as_text(column)).drop_null().to_pylist())


def is_categorical(arrow_type: pa.DataType) -> bool:
    """Say whether a column of this type is used as categories (else as numbers)."""
    if pa.types.is_dictionary(arrow_type):
        return True
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def frame(table: pa.Table, features: list[str], missing: object) -> tuple[pd.DataFrame, list[int]]:
    """Return the features as f0..fn (float64 or object text) and the categorical positions."""
    columns: dict[str, pd.Series] = {}
    categorical = []
    for index, name in enumerate(features):
        column = table.column(name)
        if is_categorical(column.type):
            values = np.asarray(as_text(column).to_numpy(zero_copy_only=False), dtype=object)
            values[pd.isna(values)] = missing
            columns[f"f{index}"] = pd.Series(values, dtype=object)
            categorical.append(index)
        else:
            numbers = (
                column.cast(pa.float64(), safe=False)
                if column.null_count == 0
                else (pc.fill_null(column.cast(pa.float64(), safe=False), math.nan))
            )
            columns[f"f{index}"] = pd.Series(numbers.to_numpy(), dtype=np.float64)
    return pd.DataFrame(columns), categorical


def fit_predict(
    table: pa.Table,
    target: str,
    kind: str,
    params: Mapping[str, float | int],
    seed: int,
    threads: int,
) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Fit `kind` on every row of `table` and return the classes and each row's probabilities."""
    classes = class_texts(table.column(target))
    index = pc.index_in(as_text(table.column(target)), value_set=pa.array(classes, pa.string()))
    y = np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)
    features = [name for name in table.column_names if name != target]
    if kind == "catboost":
        return classes, _catboost(table, features, y, len(classes), params, seed, threads)
    if kind == "logistic_regression":
        with threadpool_limits(limits=threads):
            return classes, _logistic(table, features, y, params, seed)
    raise ValueError(f"unknown kind {kind!r}")


def _catboost(
    table: pa.Table,
    features: list[str],
    y: npt.NDArray[np.int64],
    n_classes: int,
    params: Mapping[str, float | int],
    seed: int,
    threads: int,
) -> npt.NDArray[np.float64]:
    import catboost

    from ml_service.kinds.catboost_model import ctr_options

    data, categorical = frame(table, features, MISSING_CATEGORY)
    model = catboost.CatBoostClassifier(
        **{**CATBOOST_DEFAULTS, **params},
        loss_function="Logloss" if n_classes == 2 else "MultiClass",
        class_names=list(range(n_classes)),
        random_seed=seed,
        thread_count=threads,
        logging_level="Silent",
        allow_writing_files=False,
        # The service's documented rule for many classes x many categorical columns.
        **ctr_options(n_classes, len(categorical)),
    )
    pool = catboost.Pool(data, label=y, cat_features=categorical)
    model.fit(pool)
    return np.asarray(model.predict_proba(catboost.Pool(data, cat_features=categorical)))


def _logistic(
    table: pa.Table,
    features: list[str],
    y: npt.NDArray[np.int64],
    params: Mapping[str, float | int],
    seed: int,
) -> npt.NDArray[np.float64]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data, categorical = frame(table, features, math.nan)
    names = list(data.columns)
    numeric = [name for i, name in enumerate(names) if i not in categorical]
    missing = SimpleImputer(
        strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True
    )
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                numeric,
            ),
            (
                "categorical",
                make_pipeline(missing, OneHotEncoder(handle_unknown="ignore")),
                [names[i] for i in categorical],
            ),
        ]
    )
    model = LogisticRegression(
        C=params["C"], l1_ratio=0.0, solver="lbfgs", max_iter=params["max_iter"], random_state=seed
    )
    pipeline = Pipeline([("preprocess", preprocess), ("model", model)])
    with warnings.catch_warnings():
        # Not converging within max_iter is still a deterministic fit to compare against.
        warnings.simplefilter("ignore")
        pipeline.fit(data, y)
        return np.asarray(pipeline.predict_proba(data), dtype=np.float64)
