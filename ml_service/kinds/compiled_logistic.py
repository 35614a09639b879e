"""A fitted logistic-regression pipeline reduced to arrays, predicting straight from Arrow.

Needs only numpy and pyarrow: it reads the fitted attributes of the scikit-learn steps that
ml_service.kinds.sklearn_pipeline builds, without importing scikit-learn, from the pipeline
itself or from its artifact as ml_service.kinds.skops_archive reads it.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ml_service.kinds.base import FEW_ROWS, category_text, numeric_values

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from ml_service.kinds.skops_archive import Fitted


@dataclass(frozen=True, eq=False)
class _Category:
    """One categorical column: how to find its one-hot code, and each code's share of scores."""

    position: int
    # The encoder's categories, then null: a missing value has a code of its own.
    lookup: pc.SetLookupOptions
    # (categories + 2, scores): one row per category; then the row for a missing value (the
    # missing token's row if training saw it, else zeros); then zeros for a category unseen
    # in training, which OneHotEncoder(handle_unknown="ignore") encodes as all zeros.
    weights: npt.NDArray[np.float64]
    unseen: pa.Scalar
    # The same lookup as a dict (None is the missing value) for a few rows, where a compute
    # call's fixed ~10 us would cost more than the rows.
    codes: dict[str | None, int]

    def scores(self, column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.float64]:
        """Return each row's share of the scores: its category's coefficients."""
        if pa.types.is_dictionary(column.type) and len(column) > FEW_ROWS:
            return self.weights[self._dictionary_codes(column)]
        text = category_text(column)
        if len(text) <= FEW_ROWS:
            unseen = len(self.weights) - 1
            found = [self.codes.get(value, unseen) for value in text.to_pylist()]
            return self.weights[np.asarray(found, dtype=np.intp)]
        codes = pc.index_in(text, options=self.lookup)
        if codes.null_count:
            codes = pc.fill_null(codes, self.unseen)
        return self.weights[np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.intp)]

    def _dictionary_codes(self, column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.intp]:
        # Each distinct value is looked up once; each row then takes its value's code.
        missing = len(self.weights) - 2
        parts = []
        for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
            found = pc.fill_null(
                pc.index_in(category_text(chunk.dictionary), options=self.lookup), self.unseen
            )
            by_value = np.append(
                np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.intp), missing
            )
            # A missing row has a null code: it takes the entry after the dictionary's own.
            rows = pc.fill_null(chunk.indices.cast(pa.int64()), len(chunk.dictionary))
            parts.append(by_value[rows.to_numpy(zero_copy_only=False)])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass(frozen=True, eq=False)
class CompiledLogistic:
    """A fitted pipeline reduced to the arrays its predict_proba uses, applied to Arrow.

    The arithmetic is scikit-learn's (impute, scale, one-hot, affine score, then the logistic
    function for two classes or softmax for more), without building a DataFrame or a one-hot
    matrix: a one-hot column times the coefficients is one row of them.
    """

    numeric: tuple[int, ...]  # positions of the numeric columns in training order
    fill: npt.NDArray[np.float64]  # (numeric,): the imputer's value for a missing number
    mean: npt.NDArray[np.float64]  # (numeric,)
    scale: npt.NDArray[np.float64]  # (numeric,)
    numeric_weights: npt.NDArray[np.float64]  # (numeric, scores)
    categorical: tuple[_Category, ...]
    intercept: npt.NDArray[np.float64]  # (scores,): one score for two classes

    def predict_proba(self, features: pa.Table) -> npt.NDArray[np.float64]:
        """Return class probabilities, shape (rows, classes), for the columns in training order."""
        # Inputs far beyond the training range overflow to inf or NaN; the caller refuses
        # such rows by name, so the warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._predict_proba(features)

    def _predict_proba(self, features: pa.Table) -> npt.NDArray[np.float64]:
        rows = features.num_rows
        scores = np.repeat(self.intercept[np.newaxis, :], rows, axis=0)
        if self.numeric:
            x = np.empty((rows, len(self.numeric)), dtype=np.float64)
            names = features.column_names  # a new list per call: ~7 us, so taken once
            for j, position in enumerate(self.numeric):
                x[:, j] = numeric_values(features.column(position), names[position])
            x = np.where(np.isnan(x), self.fill, x)
            x -= self.mean
            x /= self.scale
            scores += x @ self.numeric_weights
        for category in self.categorical:
            scores += category.scores(features.column(category.position))
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
_COMPILED: weakref.WeakKeyDictionary[Pipeline, CompiledLogistic] = weakref.WeakKeyDictionary()


def compiled(pipeline: Pipeline) -> CompiledLogistic:
    """Return the pipeline's compiled form, compiling it on first use."""
    found = _COMPILED.get(pipeline)
    if found is None:
        # Two threads may both compile a new pipeline; the results are equal.
        found = _COMPILED[pipeline] = compile_fitted(pipeline)
    return found


def compile_fitted(pipeline: Pipeline | Fitted) -> CompiledLogistic:
    """Reduce a fitted pipeline to arrays: scikit-learn's, or its archive's attributes."""
    preprocess = pipeline.named_steps["preprocess"]
    estimator = pipeline.named_steps["model"]
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    columns = {group: list(names) for group, _, names in preprocess.transformers_}
    # Columns are found by position: models fitted before features were named f0..fn hold
    # the user's names, and the input is in training order either way.
    position = {name: index for index, name in enumerate(preprocess.feature_names_in_)}
    numeric = [position[name] for name in columns.get("numeric", [])]
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
                    position=position[name],
                    lookup=pc.SetLookupOptions(
                        pa.array([*known, None], pa.string()), skip_nulls=False
                    ),
                    weights=np.vstack([own, on_missing, zeros]),
                    unseen=pa.scalar(len(known) + 1, pa.int32()),
                    codes={**{value: code for code, value in enumerate(known)}, None: len(known)},
                )
            )
    return CompiledLogistic(
        numeric=tuple(numeric),
        fill=fill,
        mean=mean,
        scale=scale,
        numeric_weights=numeric_weights,
        categorical=tuple(categorical),
        intercept=intercept,
    )
