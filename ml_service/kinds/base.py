"""What a model kind is: a light spec (hyperparameters, checks) and a runtime that does the work.

A kind's spec module imports nothing heavy, so the server lists kinds and checks requests
without loading any ML library. The spec names its runtime module (fit, predict_proba,
feature_importance, save, load); `Kind.runtime` imports that module on first use and keeps
it. A runtime sees features named f0..fn (ml_service.model_input) and class indices
0..n_classes-1, never a user's names or labels.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ml_service.domain import FeatureKind, Progress
from ml_service.errors import FieldViolation, InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

#: Stands in for a missing category, so "missing" is a category of its own.
MISSING_CATEGORY = "__missing__"

HyperparameterType = Literal["int", "float", "string", "bool"]
Report = Callable[[Progress], None]
EvalSet = tuple[pa.Table, npt.NDArray[np.int64]]
#: A row as model_input.few_rows gives it: a float (NaN for missing) per numeric feature,
#: text (None for missing) per categorical one, in training order.
Row = list[float | str | None]


@dataclass(frozen=True)
class HyperparameterSpec:
    """One tunable setting of a kind, with the values it accepts."""

    name: str
    type: HyperparameterType
    default: int | float | str | bool
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] = ()

    def check(self, value: object) -> tuple[object, str | None]:
        """Return the value in its canonical type, or a description of what is wrong."""
        got = _describe(value)
        if self.type == "bool":
            if isinstance(value, bool):
                return value, None
            return None, f"must be a boolean (true or false), got {got}"
        if self.type == "string":
            if isinstance(value, str) and value in self.choices:
                return value, None
            return None, f"must be one of {_quoted(self.choices)}, got {got}"
        # bool is an int subclass in Python, but true is not a number to a user.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"must be {'an integer' if self.type == 'int' else 'a number'}, got {got}"
        try:
            number = float(value)
        except OverflowError:  # an int too large for a double is out of any range here
            return None, self._range_problem(got)
        if not math.isfinite(number):
            return None, f"must be a finite number, got {got}"
        if self.type == "float":
            return (number, None) if self._in_range(number) else (None, self._range_problem(got))
        # JSON and protobuf Struct carry every number as a double, so 3.0 means 3.
        if not number.is_integer():
            return None, f"must be an integer (a whole number), got {got}"
        return (int(value), None) if self._in_range(number) else (None, self._range_problem(got))

    def _range_problem(self, got: str) -> str:
        return f"must be {self.range_text()}, got {got}"

    def _in_range(self, number: float) -> bool:
        low, high = self.minimum, self.maximum
        if low is not None and (number < low or (self.exclusive_minimum and number == low)):
            return False
        return not (
            high is not None and (number > high or (self.exclusive_maximum and number == high))
        )

    def range_text(self) -> str:
        """Say in words which numbers are accepted, e.g. "greater than 0 and at most 1"."""
        parts = []
        if self.minimum is not None:
            low = "greater than" if self.exclusive_minimum else "at least"
            parts.append(f"{low} {_number(self.minimum)}")
        if self.maximum is not None:
            high = "less than" if self.exclusive_maximum else "at most"
            parts.append(f"{high} {_number(self.maximum)}")
        return " and ".join(parts) or "a number"


@dataclass(frozen=True)
class FitInput:
    """Everything one fit needs, as the trainer hands it to a runtime."""

    #: Feature columns named f0..fn: float64 for numeric, string for categorical.
    features: pa.Table
    #: Class index of each row, 0..n_classes-1.
    y: npt.NDArray[np.int64]
    n_classes: int
    #: How each feature column (by its f-name) is used.
    feature_kinds: Mapping[str, FeatureKind]
    #: Resolved hyperparameters, every one present and checked.
    params: Mapping[str, object]
    seed: int
    report: Report
    #: Holdout rows and their class indices, for holdout losses while fitting.
    eval_set: EvalSet | None = None
    #: Threads the library may use; None for every core.
    threads: int | None = None


@runtime_checkable
class Runtime(Protocol):
    """The heavy half of a kind; its runtime module provides these as module functions."""

    def library_versions(self) -> dict[str, str]:
        """Return the versions of the libraries that fit and load this kind."""
        ...

    def fit(self, data: FitInput) -> object:
        """Fit a model and return it; report progress as it goes."""
        ...

    def predict_proba(self, model: object, features: pa.Table) -> npt.NDArray[np.float64]:
        """Return class probabilities, shape (rows, classes), for columns in training order."""
        ...

    def feature_importance(self, model: object, names: Sequence[str]) -> Sequence[float]:
        """Return one raw importance score per feature column, in training order."""
        ...

    # A runtime may also offer predict_proba_rows(model, rows: Sequence[Row]), for a few
    # rows as Python values (model_input.few_rows), when that beats the typed table; see
    # model_input.probabilities.

    def save(self, model: object, path: str) -> None:
        """Write the model to path in the kind's safe native format."""
        ...

    def load(self, path: str) -> object:
        """Read a model that save wrote."""
        ...

    def fit_notes(self, model: object) -> list[str]:
        """Return things the user should know about a fit, e.g. that it did not converge."""
        ...


class Kind:
    """A kind of model: its settings and checks; `runtime` fits, predicts and stores it."""

    name: str
    display_name: str
    description: str
    hyperparameters: tuple[HyperparameterSpec, ...]
    artifact_suffix: str
    #: The module implementing Runtime for this kind, imported on first use.
    runtime_module: str
    #: Largest magnitude of a numeric feature value the kind can fit on; None for no limit.
    max_feature_magnitude: float | None = None
    #: The float type the kind reads numeric features as: values that differ only beyond
    #: its precision or range are one value to the kind.
    feature_float: pa.DataType = pa.float64()

    @property
    def runtime(self) -> Runtime:
        """Return the kind's runtime, importing its module the first time."""
        found: Runtime | None = self.__dict__.get("_runtime")
        if found is None:
            found = cast(Runtime, importlib.import_module(self.runtime_module))
            self.__dict__["_runtime"] = found
        return found

    def resolve_hyperparameters(self, given: Mapping[str, object]) -> dict[str, object]:
        """Fill in defaults and return the effective settings; raise one violation per problem."""
        specs = {spec.name: spec for spec in self.hyperparameters}
        violations = [
            FieldViolation(
                f"hyperparameters.{name}",
                f"unknown hyperparameter for kind '{self.name}'; known: {', '.join(specs)}",
            )
            for name in given
            if name not in specs
        ]
        resolved: dict[str, object] = {}
        bad = False
        for name, spec in specs.items():
            value, problem = spec.check(given[name]) if name in given else (spec.default, None)
            if problem is not None:
                violations.append(FieldViolation(f"hyperparameters.{name}", problem))
                bad = True
            resolved[name] = value
        if not bad:
            # Combinations are only meaningful once every single value is acceptable.
            violations.extend(self.check_combination(resolved))
        if violations:
            raise InvalidArgument.of(violations)
        return resolved

    def check_combination(self, params: Mapping[str, object]) -> list[FieldViolation]:
        """Return problems with how valid values go together; none by default."""
        return []

    def check_for_data(self, params: Mapping[str, object], n_classes: int) -> list[FieldViolation]:
        """Return problems with fitting these settings to n_classes; none by default."""
        return []


def normalise_importance(names: list[str], scores: npt.ArrayLike) -> list[tuple[str, float]]:
    """Scale scores to sum to 100 and sort them, most important first, ties by name."""
    values = np.abs(np.asarray(scores, dtype=np.float64))
    total = float(values.sum())
    shares = values * (100.0 / total) if total > 0 else np.zeros_like(values)
    return sorted(zip(names, map(float, shares), strict=True), key=lambda item: (-item[1], item[0]))


def numeric_values(column: pa.ChunkedArray | pa.Array, name: str) -> npt.NDArray[np.float64]:
    """Return a column as float64 with NaN for missing; bools become 0/1."""
    if pa.types.is_integer(column.type) and not column.null_count:
        # numpy converts integers to float64 as Arrow's cast does; prediction calls this per
        # column, and for a few rows the compute call would cost more than the data.
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    try:
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        if column.type != pa.float64():
            # unsafe: int64 beyond 2**53 may round, which is fine for a feature.
            column = pc.cast(column, pa.float64(), safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidArgument.field(f"columns.{name}", not_numbers(name, exc)) from exc
    # Arrow turns a missing float64 into NaN by itself.
    array = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    if np.isinf(array).any():
        raise InvalidArgument.field(
            f"columns.{name}",
            f"column '{name}' holds infinite values; use finite numbers or leave them empty",
        )
    return array


# Arrow's words for a value or a type it cannot cast to a number.
_UNPARSED = re.compile(r"Failed to parse string: '(.*)' as a scalar of type", re.S)
_UNSUPPORTED = re.compile(r"Unsupported cast from (.+?) to ")


def unparsed_text(error: Exception) -> str | None:
    """The text Arrow could not read as a number (shortened), if that is what it said."""
    found = _UNPARSED.search(str(error))
    return shorten(found[1]) if found else None


def not_numbers(name: str, error: Exception) -> str:
    """Why a feature's column could not be read as numbers, in the user's words."""
    if (text := unparsed_text(error)) is not None:
        return f"column '{name}' must hold numbers ('{text}' is not a number)"
    if found := _UNSUPPORTED.search(str(error)):
        return f"column '{name}' must hold numbers, not {found[1]} values"
    return f"column '{name}' must hold numbers"


# Up to this many rows Python values beat Arrow compute and numpy calls, which cost ~3-10 us
# each whatever the length: the one-row path builds columns and labels from Python values.
FEW_ROWS = 16


def category_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Return a column as strings with nulls for missing (NaN counts as missing)."""
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_large_string(column.type) and len(column) <= FEW_ROWS:
        # pandas 3 sends its text as large_string. A compute cast costs ~7 us whatever the
        # length; for a few rows, building the values again costs half that.
        return pa.array(column.to_pylist(), pa.string())
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    if pa.types.is_float16(column.type):
        # Read as float32, as arrow_ipc converts it at the door; float16 has no add kernel.
        column = pc.cast(column, pa.float32())
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
        # -0.0 (what rounding a small negative gives) is the 0 it equals, not a class "-0".
        column = pc.add(column, pa.scalar(0.0, column.type))
    if not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())
    return column


def category_column(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Return a categorical column as text, keeping a dictionary-encoded one encoded.

    A dictionary's values are made text once and the rows keep their codes, so a kind can
    look each distinct category up once instead of once per row (a client streaming a CSV
    sends its text dictionary-encoded). A dictionary whose text values hold a missing value
    (NaN or null) or repeat is decoded instead: its codes alone would not say which rows
    are missing, or one category would have two codes.
    """
    if not pa.types.is_dictionary(column.type):
        return category_text(column)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    kept = [_text_dictionary(chunk) for chunk in chunks]
    if any(chunk is None for chunk in kept):
        return category_text(column)
    if isinstance(column, pa.Array):
        return kept[0]
    return pa.chunked_array(kept, pa.dictionary(column.type.index_type, pa.string()))


def _text_dictionary(chunk: pa.DictionaryArray) -> pa.DictionaryArray | None:
    values = category_text(chunk.dictionary)
    if values.null_count or len(pc.unique(values)) != len(values):
        return None
    return pa.DictionaryArray.from_arrays(chunk.indices, values)


def category_values(column: pa.ChunkedArray | pa.Array, missing: object) -> npt.NDArray[np.object_]:
    """Return a column as an object array of str with `missing` where a value is missing."""
    text = category_text(column)
    array = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
    array[np.asarray(text.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = missing
    return array


def to_frame(
    features: pa.Table, feature_kinds: Mapping[str, FeatureKind], missing: object
) -> pd.DataFrame:
    """Build the DataFrame the libraries take: float64 numbers, object-dtype categories."""
    # Imported here: only fitting and the tests build frames, and pandas takes a while to load.
    import pandas as pd

    columns: dict[str, pd.Series] = {}
    for name in features.column_names:
        column = features.column(name)
        if feature_kinds[name] is FeatureKind.NUMERIC:
            columns[name] = pd.Series(numeric_values(column, name), copy=False)
        else:
            # object dtype on purpose: pandas 3 would infer its own str dtype otherwise.
            columns[name] = pd.Series(category_values(column, missing), dtype=object, copy=False)
    return pd.DataFrame(columns, copy=False)


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string '{shorten(value)}'"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return shorten(_number(value))
    return f"a value of type {type(value).__name__}"


def shorten(text: str, limit: int = 40) -> str:
    """Return a value to echo back to its sender, cut to `limit` characters."""
    # Echo a value back to its sender, but not a megabyte of it.
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _quoted(choices: tuple[str, ...]) -> str:
    return ", ".join(f"'{choice}'" for choice in choices)
