"""The one place where a user's columns become what a model kind sees.

A kind fits and predicts on columns named by position (`f0`, `f1`, ...), typed once here:
numeric columns as float64 with NaN for missing, categorical columns as strings with null
for missing (kept dictionary-encoded when they came so). No library ever sees a user's
column name, so none can rename, truncate or trip over one (CatBoost renames an empty name
and stops at a NUL byte; pandas treats some names specially). The names the user sent stay
in the signature, in errors and in feature importance; the mapping back is by position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ml_service.domain import FeatureKind
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.kinds.base import (
    FEW_ROWS,
    Row,
    Runtime,
    category_column,
    not_numbers,
    shorten,
)

ByRows = Callable[[object, Sequence[Row]], npt.NDArray[np.float64]]


def internal_name(index: int) -> str:
    """Return the name a kind sees for the feature at this position."""
    return f"f{index}"


def internal_names(count: int) -> list[str]:
    """Return the names a kind sees for `count` features, in training order."""
    return [internal_name(index) for index in range(count)]


def internal_kinds(kinds: Sequence[FeatureKind]) -> dict[str, FeatureKind]:
    """Return how each feature is used, keyed by the names a kind sees."""
    return {internal_name(index): kind for index, kind in enumerate(kinds)}


def probabilities(
    runtime: Runtime, model: object, table: pa.Table, features: Sequence[tuple[str, FeatureKind]]
) -> npt.NDArray[np.float64]:
    """Return a runtime's class probabilities for the rows of a user's table.

    From few_rows' Python values when the runtime offers predict_proba_rows and the rows
    allow it; else from the typed table `build` makes.
    """
    by_rows = cast(ByRows | None, getattr(runtime, "predict_proba_rows", None))
    if by_rows is not None:
        rows = few_rows(table, features)
        if rows is not None:
            return by_rows(model, rows)
    return runtime.predict_proba(model, build(table, features))


def build(table: pa.Table, features: Sequence[tuple[str, FeatureKind]]) -> pa.Table:
    """Return the feature columns in order, typed for the kinds and named by position.

    Raises InvalidArgument naming the user's column when a numeric one cannot be read as
    numbers or holds infinities.
    """
    columns = []
    problems: list[FieldViolation] = []
    for name, kind in features:
        column = table.column(name)
        if kind is FeatureKind.CATEGORICAL:
            columns.append(category_column(column))
            continue
        numbers, problem = _numbers(column, name)
        if problem is not None:
            problems.append(FieldViolation(f"columns.{name}", problem))
        columns.append(numbers)
    if problems:
        raise InvalidArgument.of(problems)
    return pa.Table.from_arrays(columns, names=internal_names(len(features)))


def few_rows(table: pa.Table, features: Sequence[tuple[str, FeatureKind]]) -> list[Row] | None:
    """Return up to FEW_ROWS rows as Python values, typed as `build` types them, or None.

    Building an Arrow array costs ~3 us whatever its length, so for a one-row predict the
    typed table costs more than the prediction's own data; these rows make none. None when
    there are more rows or a column needs what only `build` does: converting (dictionaries,
    booleans, dates, numbers as categories), or refusing (text in a numeric feature,
    infinities) with the error that names the column.
    """
    if not 0 < table.num_rows <= FEW_ROWS or not features:
        return None
    columns: list[list[float | str | None]] = []
    for name, kind in features:
        column = table.column(name)
        arrow_type = column.type
        if kind is FeatureKind.CATEGORICAL:
            if not (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)):
                return None
            columns.append(column.to_pylist())
        elif pa.types.is_integer(arrow_type):
            # float() rounds integers beyond 2**53 as build's conversion does.
            columns.append([math.nan if v is None else float(v) for v in column.to_pylist()])
        elif pa.types.is_float64(arrow_type) or pa.types.is_float32(arrow_type):
            numbers = [math.nan if v is None else v for v in column.to_pylist()]
            if any(math.isinf(v) for v in numbers):
                return None
            columns.append(numbers)
        else:
            return None
    return [list(row) for row in zip(*columns, strict=True)]


def _numbers(column: pa.ChunkedArray, name: str) -> tuple[pa.ChunkedArray | pa.Array, str | None]:
    # Each compute call costs ~10 us whatever the length, more than a few rows' data, so
    # integers (never infinite) and the infinity check go through numpy instead.
    if pa.types.is_integer(column.type) and not column.null_count:
        # numpy rounds int64 beyond 2**53 as Arrow's unsafe cast does.
        return pa.array(np.asarray(column.to_numpy(), dtype=np.float64)), None
    if column.type == pa.float64():
        numbers: pa.ChunkedArray | pa.Array = column
    else:
        try:
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            # unsafe: int64 beyond 2**53 may round, which is fine for a feature.
            numbers = pc.cast(column, pa.float64(), safe=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            return column, not_numbers(name, exc)
    if np.isinf(numbers.to_numpy(zero_copy_only=False)).any():
        return numbers, (
            f"column '{name}' holds infinite values; use finite numbers or leave them empty"
        )
    return numbers, None


_UNREAD_BOOLEAN = re.compile(r"Failed to parse value: (.*)", re.S)


def booleans(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Text in a feature trained on booleans, read as Arrow's CSV reader reads them.

    A CSV's `TRUE` / `false` column is a boolean one, and numbers are read as 0 and 1; the
    same words sent as text (JSON rows, a CSV of a few rows read as text) must not be
    refused as "not a number".
    """
    try:
        return pc.cast(column, pa.bool_())
    except pa.ArrowInvalid as exc:
        found = _UNREAD_BOOLEAN.search(str(exc))
        value = f" ('{shorten(found[1])}' is neither)" if found else ""
        raise InvalidArgument.field(
            f"columns.{name}", f"column '{name}' must hold true or false{value}"
        ) from exc


def largest_magnitude(table: pa.Table, row: int) -> tuple[int, float] | None:
    """Return the position and value of the numeric feature largest in magnitude in a row."""
    best: tuple[int, float] | None = None
    for index, column in enumerate(table.columns):
        if column.type != pa.float64():
            continue
        value = column[row].as_py()
        if value is None or np.isnan(value):
            continue
        if best is None or abs(value) > abs(best[1]):
            best = (index, value)
    return best
