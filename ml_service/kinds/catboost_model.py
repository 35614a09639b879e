"""The CatBoost runtime: fit with progress, predict from Arrow, importance, save and load.

The spec in ml_service.kinds.catboost names this module; it is imported only when a model
is fitted or used, so the server starts without loading catboost or pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import catboost
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml_service.domain import FeatureKind, Progress
from ml_service.kinds.base import (
    MISSING_CATEGORY,
    FitInput,
    Report,
    Row,
    category_text,
    numeric_values,
    to_frame,
)
from ml_service.kinds.catboost import CLASS_WEIGHTS

# Up to this many rows, predict from a 2-D object array: CatBoost hashes every category
# string, but it costs nothing to set up. Beyond, a DataFrame of pandas categoricals, which
# CatBoost hashes once per distinct value: on adult-shaped data that makes the input
# ~0.2 us a row instead of ~0.7 us from object columns, but costs ~1 ms to set up.
_SMALL_BATCH = 1024
# Up to this many rows, build the pool and predict on one thread: CatBoost's default (every
# core) left a native thread burning ~0.4 ms of CPU after each one-row call, more than the
# prediction itself, and 100 rows took as long either way on two cores.
_ONE_THREAD_ROWS = 100
_MISSING = pa.scalar(MISSING_CATEGORY, pa.string())
# CatBoost's target statistics for categories are kept per class: their cost grows with
# (classes - 1) x categorical columns. A 33-class table with 252 categorical columns took
# over six minutes for 26 trees; past this budget categories are encoded by frequency
# (Counter) alone, which took seven seconds, and the version's notes say so.
CTR_BUDGET = 500
FREQUENCY_ONLY = {"simple_ctr": ["Counter"], "combinations_ctr": ["Counter"]}


def ctr_options(n_classes: int, n_categorical: int) -> dict[str, list[str]]:
    """Return CatBoost's category-encoding options for this many classes and categories."""
    if n_classes <= 2 or (n_classes - 1) * n_categorical <= CTR_BUDGET:
        return {}
    return FREQUENCY_ONLY


class _ProgressCallback:
    """Forward CatBoost's per-iteration losses to a report function."""

    def __init__(self, report: Report, total: int) -> None:
        self.report = report
        self.total = total
        self.error: BaseException | None = None

    def after_iteration(self, info: Any) -> bool:
        """Report one finished iteration; stop training if the report raised."""
        metrics = {
            f"{prefix}_{metric}": float(values[-1])
            for source, prefix in (("learn", "learn"), ("validation", "holdout"))
            for metric, values in info.metrics.get(source, {}).items()
        }
        # info.iteration counts finished iterations, starting at 1.
        done = int(info.iteration)
        try:
            self.report(
                Progress(
                    stage="fitting",
                    fraction=done / self.total,
                    iteration=done,
                    total_iterations=self.total,
                    metrics=metrics,
                )
            )
        except BaseException as exc:
            # CatBoost would wrap it in a CatBoostError with a traceback as text; keep it
            # intact so a cancel raised by the reporter arrives as itself.
            self.error = exc
            return False
        return True


def library_versions() -> dict[str, str]:
    """Return the catboost and numpy versions."""
    return {"catboost": catboost.__version__, "numpy": np.__version__}


def fit(data: FitInput) -> catboost.CatBoostClassifier:
    """Fit trees with progress per iteration; holdout losses too when there is a holdout."""
    params = data.params
    iterations = int(params["iterations"])  # type: ignore[call-overload]
    model = catboost.CatBoostClassifier(
        iterations=iterations,
        learning_rate=params["learning_rate"],
        depth=params["depth"],
        l2_leaf_reg=params["l2_leaf_reg"],
        random_strength=params["random_strength"],
        auto_class_weights=CLASS_WEIGHTS[str(params["class_weights"])],
        loss_function="Logloss" if data.n_classes == 2 else "MultiClass",
        # Pin the classes so probabilities have one column per class index, always.
        class_names=list(range(data.n_classes)),
        random_seed=data.seed % 2**32,
        thread_count=data.threads or -1,
        logging_level="Verbose" if params["verbose"] else "Silent",
        # CatBoost hands every callback the whole loss history, so the callback costs
        # O(history) per iteration; sampling the losses keeps long fits linear.
        metric_period=max(1, iterations // 100),
        allow_writing_files=False,
        **ctr_options(
            data.n_classes,
            sum(kind is FeatureKind.CATEGORICAL for kind in data.feature_kinds.values()),
        ),
    )
    callback = _ProgressCallback(data.report, iterations)
    train_pool = _pool(data.features, data.feature_kinds, data.y)
    eval_set = data.eval_set
    eval_pool = None if eval_set is None else _pool(eval_set[0], data.feature_kinds, eval_set[1])
    try:
        # use_best_model=False: the model has exactly the iterations asked for.
        model.fit(train_pool, eval_set=eval_pool, use_best_model=False, callbacks=[callback])
    except catboost.CatBoostError:
        if callback.error is not None:
            raise callback.error from None
        raise
    if callback.error is not None:
        raise callback.error
    return model


def predict_proba(model: object, features: pa.Table) -> npt.NDArray[np.float64]:
    """Return class probabilities from the trees, for the columns in training order."""
    booster = _booster(model)
    names = list(booster.feature_names_)
    categorical = list(booster.get_cat_feature_indices())
    if features.num_rows == 0:
        return np.empty((0, len(booster.classes_)), dtype=np.float64)
    data: npt.NDArray[np.object_] | pd.DataFrame
    if features.num_rows <= _SMALL_BATCH:
        data = _object_matrix(features, names, set(categorical))
    else:
        data = _categorical_frame(features, names, set(categorical))
    threads = 1 if features.num_rows <= _ONE_THREAD_ROWS else -1
    pool = catboost.Pool(data, cat_features=categorical, thread_count=threads)
    proba = booster.predict_proba(pool, thread_count=threads)
    return np.asarray(proba, dtype=np.float64)


def predict_proba_rows(model: object, rows: Sequence[Row]) -> npt.NDArray[np.float64]:
    """Return class probabilities for a few rows of model_input.few_rows values."""
    booster = _booster(model)
    # Only a categorical value can be None: few_rows gives a missing number as NaN.
    matrix = np.array(
        [[MISSING_CATEGORY if value is None else value for value in row] for row in rows],
        dtype=object,
    )
    categorical = list(booster.get_cat_feature_indices())
    pool = catboost.Pool(matrix, cat_features=categorical, thread_count=1)
    return np.asarray(booster.predict_proba(pool, thread_count=1), dtype=np.float64)


def feature_importance(model: object, names: Sequence[str]) -> list[float]:
    """Return CatBoost's prediction-values-change importance, one score per column."""
    return [float(score) for score in _booster(model).get_feature_importance()]


def save(model: object, path: str) -> None:
    """Write CatBoost's native binary model format."""
    _booster(model).save_model(path, format="cbm")


def load(path: str) -> catboost.CatBoostClassifier:
    """Read a model in CatBoost's native binary format."""
    model = catboost.CatBoostClassifier()
    model.load_model(path, format="cbm")
    return model


def fit_notes(model: object) -> list[str]:
    """Say so when categories were encoded by frequency alone (see CTR_BUDGET)."""
    if _booster(model).get_params().get("simple_ctr") != FREQUENCY_ONLY["simple_ctr"]:
        return []
    return [
        "with this many classes and categorical columns, categories were encoded by their "
        "frequency only (per-class target statistics would have taken very long)"
    ]


def _pool(
    features: pa.Table,
    feature_kinds: Mapping[str, FeatureKind],
    label: npt.NDArray[np.int64] | None = None,
) -> catboost.Pool:
    frame = to_frame(features, feature_kinds, MISSING_CATEGORY)
    categorical = [
        index
        for index, name in enumerate(features.column_names)
        if feature_kinds[name] is FeatureKind.CATEGORICAL
    ]
    return catboost.Pool(frame, label=label, cat_features=categorical)


def _booster(model: object) -> catboost.CatBoostClassifier:
    if not isinstance(model, catboost.CatBoostClassifier):
        raise TypeError(f"expected a CatBoostClassifier, got {type(model).__name__}")
    return model


def _missing_filled(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    # As in training: categories as text, a missing one as the missing token.
    text = category_text(column)
    return pc.fill_null(text, _MISSING) if text.null_count else text


def _object_matrix(
    features: pa.Table, names: list[str], categorical: set[int]
) -> npt.NDArray[np.object_]:
    """Return the rows as CatBoost takes them from numpy: floats and category strings."""
    # A few rows of plain numbers and text come as Python values (predict_proba_rows);
    # what reaches here in a few rows (dictionaries, booleans) is rare enough for Arrow.
    matrix = np.empty((features.num_rows, len(names)), dtype=object)
    for index, name in enumerate(names):
        # By position: models fitted before features were named f0..fn hold the user's names.
        column = features.column(index)
        if index in categorical:
            matrix[:, index] = _missing_filled(column).to_numpy(zero_copy_only=False)
        else:
            matrix[:, index] = numeric_values(column, name)
    return matrix


def _categorical_frame(features: pa.Table, names: list[str], categorical: set[int]) -> pd.DataFrame:
    """Return the rows as a DataFrame with pandas categorical columns for the categories."""
    columns: dict[str, pd.Series] = {}
    for index, name in enumerate(names):
        column = features.column(index)
        if index in categorical:
            columns[name] = _categories(column)
        else:
            columns[name] = pd.Series(numeric_values(column, name), copy=False)
    return pd.DataFrame(columns, copy=False)


def _categories(column: pa.ChunkedArray) -> pd.Series:
    """Return a categorical feature as a pandas categorical, each category hashed once."""
    if pa.types.is_dictionary(column.type):
        encoded = _dictionary_filled(column)
    else:
        encoded = pc.dictionary_encode(_missing_filled(column))
        if isinstance(encoded, pa.ChunkedArray):
            # One dictionary for all chunks, so the codes mean the same everywhere.
            encoded = encoded.unify_dictionaries().combine_chunks()
    categories = pd.Index(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    return pd.Series(
        pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories), validate=False),
        copy=False,
    )


def _dictionary_filled(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """Return text that came dictionary-encoded with the missing token for a missing row.

    The rows keep the codes they came with, so no row's text is built or hashed again.
    model_input.build gives distinct text values without missing ones (base.category_column).
    """
    # One dictionary for all chunks, so the codes mean the same everywhere.
    encoded = column.unify_dictionaries().combine_chunks()
    values = encoded.dictionary
    if not encoded.null_count:
        return encoded
    token = pc.index(values, _MISSING).as_py()
    if token < 0:
        token, values = len(values), pa.concat_arrays([values, pa.array([MISSING_CATEGORY])])
    rows = pc.fill_null(encoded.indices.cast(pa.int64()), token)
    return pa.DictionaryArray.from_arrays(rows, values)
