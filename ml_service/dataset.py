"""Training data: which columns to use and how, checks with clear errors, and the signature.

Column types: integers, floats, booleans and decimals are numeric; strings and dictionaries
are categorical. A numeric column may be overridden to categorical (its values as text, e.g.
true -> "true", 1 -> "1"); a string column may be overridden to numeric if every value parses
as a number. Text of numbers written with decorations ("$3.50", "12%", "1,234", "(12.00)")
is refused unless feature_types declares it categorical: inferred, each amount would be a
category of its own (mlops_client.number_text). Dates, times, binary, nested and extension
types are refused: convert them to a number or a string first, or leave them out of
feature_columns.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ml_service.domain import FeatureColumn, FeatureKind, Signature
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.kinds.base import category_text, unparsed_text
from mlops_client.number_text import decorated_numbers

#: More classes than this is refused outright: beyond it a model's output is mostly noise.
MAX_CLASSES = 1000
#: A target looks continuous or like an identifier past these counts, unless the request
#: says allow_many_classes: more classes than MANY_CLASSES, or at least FEW_ROWS_CLASSES
#: classes with fewer than MIN_ROWS_PER_CLASS rows per class on average.
MANY_CLASSES = 50
FEW_ROWS_CLASSES = 10
MIN_ROWS_PER_CLASS = 5
#: The float type of a kind that reads numbers at full precision.
FLOAT64 = pa.float64()

_ACCEPTED = (
    "accepted: integers, floats, booleans and decimals (numeric), "
    "strings and dictionaries (categorical)"
)
_TARGET_TYPES = {
    str(t): t
    for t in (
        pa.string(),
        pa.large_string(),
        pa.bool_(),
        pa.float32(),
        pa.float64(),
        *(getattr(pa, f"{sign}int{bits}")() for sign in ("", "u") for bits in (8, 16, 32, 64)),
    )
}


class _Problems(list[FieldViolation]):
    """Violations collected while checking, to report all at once."""

    def add(self, field: str, description: str) -> None:
        """Record one problem with one field."""
        self.append(FieldViolation(field, description))


@dataclass(frozen=True)
class TrainingPlan:
    """The target and the feature columns, each with how it is used and its Arrow type."""

    target: str
    features: tuple[tuple[str, FeatureKind, str], ...]
    #: The features whose kind the request gave (feature_types; a retrain's are its parent's),
    #: rather than inferred from their Arrow type.
    explicit: frozenset[str] = frozenset()

    @property
    def feature_names(self) -> list[str]:
        """Return the feature column names in training order."""
        return [name for name, _, _ in self.features]

    @property
    def feature_kinds(self) -> dict[str, FeatureKind]:
        """Return how each feature column is used."""
        return {name: kind for name, kind, _ in self.features}


def pandas_index_columns(schema: pa.Schema) -> frozenset[str]:
    """Columns that hold a DataFrame's index, as pa.Table.from_pandas and to_parquet keep it.

    A filtered frame's index (__index_level_0__) numbers its rows, and rows are often
    sorted by their class: a feature by default, it predicted the class from where a row
    was. Row labels, not data; named in feature_columns, they are read as any column.
    """
    raw = (schema.metadata or {}).get(b"pandas")
    if raw is None:
        return frozenset()
    try:
        names = json.loads(raw).get("index_columns", [])
    except (ValueError, AttributeError):  # not pandas' JSON, or not an object
        return frozenset()
    if not isinstance(names, list):
        return frozenset()
    # A RangeIndex is written as a dict describing it, with no column.
    return frozenset(n for n in names if isinstance(n, str))


def _trailing_empty(schema: pa.Schema) -> frozenset[str]:
    """The column a CSV ending each line with a separator has: no name, no values.

    Excel on Windows, and exports that write a separator after every field, end each line
    with a comma. Not a column the user has: a feature by default, it was refused as
    "column '' has no values"; named in feature_columns, it is read as any column.
    """
    unnamed = [field for field in schema if field.name == ""]
    if len(unnamed) == 1 and pa.types.is_null(unnamed[0].type):
        return frozenset({""})
    return frozenset()


def plan_training(
    schema: pa.Schema,
    target: str,
    feature_columns: Sequence[str],
    overrides: Mapping[str, FeatureKind | str],
) -> TrainingPlan:
    """Choose and type the columns to train on; raise one violation per problem found."""
    problems = _Problems()
    counts = Counter(schema.names)
    types = {field.name: field.type for field in schema}
    known = (
        f"columns in the data: {_names(schema.names)}"
        if schema.names
        else "the data has no columns"
    )
    if len(schema.names) == 1 and (separator := _separator_in(schema.names[0])):
        # A CSV separated by another character reads as one column named after its header.
        known += f" (one column: a CSV separated by {separator} rather than commas?)"
    unique = "appears {} times in the data; column names must be unique"
    if not target:
        problems.add("target_column", "is required; name the label column")
    elif target not in types:
        problems.add("target_column", f"column '{target}' {_absent(target, types)}; {known}")
    elif counts[target] > 1:
        problems.add("target_column", f"column '{target}' {unique.format(counts[target])}")
    # A column of Arrow type null holds only missing values: check_training_table says so.
    elif not pa.types.is_null(types[target]) and _target_type(types[target]) is None:
        problems.add(
            "target_column",
            f"column '{target}' holds {_holding(types[target])}, which cannot be class labels; "
            "accepted: strings, dictionaries, integers, booleans and floats",
        )
    for name, count in Counter(feature_columns).items():
        if count > 1:
            problems.add("feature_columns", f"column '{name}' is listed {count} times")
    if target in feature_columns:
        problems.add("feature_columns", f"column '{target}' is the target; it cannot be a feature")
    index = pandas_index_columns(schema)
    every = [n for n in schema.names if n != target and n not in index | _trailing_empty(schema)]
    chosen = list(dict.fromkeys(feature_columns or every))
    kinds: dict[str, FeatureKind] = {}
    for name, value in overrides.items():
        field = f"feature_types.{name}"
        if name == target:
            problems.add(field, f"column '{name}' is the target, not a feature")
        elif name not in types:
            # A chosen feature's absence is said once, under feature_columns (a retrain's
            # types are its parent's: the user never sent them).
            if name not in chosen:
                problems.add(field, f"column '{name}' {_absent(name, types)}; {known}")
        elif name not in chosen:
            problems.add(field, f"column '{name}' is not among feature_columns")
        elif value not in tuple(FeatureKind):
            problems.add(field, f"must be 'numeric' or 'categorical', got '{value}'")
        else:
            kinds[name] = FeatureKind(value)
    features: list[tuple[str, FeatureKind, str]] = []
    for name in (name for name in chosen if name != target):
        if name not in types:
            problems.add("feature_columns", f"column '{name}' {_absent(name, types)}; {known}")
        elif counts[name] > 1:
            problems.add("feature_columns", f"column '{name}' {unique.format(counts[name])}")
        elif (problem := _type_problem(name, types[name], kinds.get(name))) is not None:
            problems.add(f"feature_types.{name}" if name in kinds else "feature_columns", problem)
        elif (kind := kinds.get(name) or _inferred_kind(types[name])) is not None:
            features.append((name, kind, str(types[name])))
    if not problems and not features:
        problems.add(
            "feature_columns", f"no feature columns are left besides the target '{target}'"
        )
    if problems:
        raise InvalidArgument.of(problems)
    return TrainingPlan(target, tuple(features), frozenset(kinds))


def check_training_table(
    table: pa.Table,
    plan: TrainingPlan,
    *,
    allow_many_classes: bool = False,
    max_magnitude: float | None = None,
    feature_float: pa.DataType = FLOAT64,
    holdout: float = 0.0,
    seed: int = 0,
    parent_version: int | None = None,
) -> int:
    """Check the rows and return how many classes the target has.

    `parent_version`: a retrain's, whose column types the new rows must fit.

    Refused: no rows, unusable labels, empty or unusable feature columns; text columns of
    numbers written with decorations ("$3.50", "12%", "1,234", "(12.00)") unless the request
    declared them categorical (plan.explicit); a target that
    looks continuous unless allow_many_classes; numbers larger in magnitude than
    max_magnitude (when the kind has such a limit), by column; features that never vary
    as the kind reads numbers (feature_float), in the whole table or in the rows the
    holdout (split by seed) leaves to train on.
    """
    rows = table.num_rows
    if rows == 0:
        raise InvalidArgument.field("dataset", "the training data has no rows")
    problems = _Problems()
    label = f"column '{plan.target}'"
    target = table.column(plan.target)
    if missing := _missing_count(target):
        problems.add(
            "target_column",
            f"{label} has {missing} missing labels (null or NaN) in {rows} rows; "
            "remove those rows or fill in their labels (read from a CSV, an empty field and "
            "markers such as NA, None and NULL are missing)",
        )
    if pa.types.is_floating(target.type) and (infinite := _infinite_count(target)):
        problems.add("target_column", f"{label} has {infinite} infinite labels; use finite ones")
    classes = _distinct_text(target)
    if len(classes) == 1:
        problems.add(
            "target_column",
            f"{label} has one class only ('{classes[0]}'); a classifier needs two or more",
        )
    elif len(classes) > MAX_CLASSES:
        problems.add(
            "target_column",
            f"{label} has {len(classes)} distinct values, over the limit of {MAX_CLASSES} "
            "classes; is it really the label column?",
        )
    elif not allow_many_classes and not missing:
        reason = looks_continuous(target, len(classes), rows)
        if reason is not None:
            problems.add(
                "target_column",
                f"{label} looks continuous or like an identifier ({reason}); choose another "
                "target, or set allow_many_classes to train on it anyway",
            )
    for name, kind, _ in plan.features:
        column = table.column(name)
        if _missing_count(column) == rows:
            problems.add(
                "feature_columns",
                f"column '{name}' has no values (all {rows} rows are missing); "
                "leave it out of feature_columns or fill it in",
            )
        elif kind is FeatureKind.NUMERIC:
            problems.extend(_numeric_problems(name, column, max_magnitude, parent_version))
        elif name not in plan.explicit and (decorated := decorated_numbers(column)) is not None:
            # Text as read, not a choice: each amount would be a category of its own.
            problems.add("feature_columns", decorated.problem(name))
    if not problems and all(
        _is_constant(table.column(name), kind, feature_float) for name, kind, _ in plan.features
    ):
        blurred = [
            (name, column)
            for name, kind, _ in plan.features
            if not _is_constant(column := table.column(name), kind)
        ]
        if blurred:
            problems.add(
                "feature_columns",
                f"every feature column holds one value in all {rows} rows as this model kind "
                f"reads numbers (as {feature_float.bit_width}-bit floats): "
                + "; ".join(_range_text(name, column) for name, column in blurred)
                + ", all one number to it; shift or rescale such columns (subtract the "
                "smallest value, or scale by a power of ten)",
            )
        else:
            problems.add(
                "feature_columns",
                f"every feature column holds one value in all {rows} rows, so a model has "
                "nothing to learn from; add columns whose values vary",
            )
    elif not problems and holdout > 0:
        # A value seen in few rows (a rare flag) can all go to the holdout: CatBoost then
        # failed the queued job with "All features are either constant or ignored". The
        # split (the worker's) is made only when no feature is sure to vary whatever it is.
        held = int(holdout * rows) + len(classes)
        if not any(
            _varies_past(table.column(name), kind, feature_float, held)
            for name, kind, _ in plan.features
        ):
            kept, _ = holdout_split(encode_target(target, classes), len(classes), holdout, seed)
            if constant_in(table, plan, kept, feature_float):
                problems.add(
                    "holdout_fraction", holdout_took_the_differences(len(kept), holdout, seed)
                )
    if problems:
        raise InvalidArgument.of(problems)
    return len(classes)


def constant_in(
    table: pa.Table,
    plan: TrainingPlan,
    rows: npt.NDArray[np.int64],
    feature_float: pa.DataType = FLOAT64,
) -> bool:
    """Whether every feature holds one value in `rows`, as a kind reading `feature_float` sees."""
    return all(
        _is_constant(table.column(name).take(rows), kind, feature_float)
        for name, kind, _ in plan.features
    )


def holdout_took_the_differences(kept: int, holdout: float, seed: int) -> str:
    """Why training rows that never vary are refused, and what to change."""
    return (
        f"every feature column holds one value in the {kept} training rows: the holdout "
        f"({holdout:g} of the rows, split by seed {seed}) took every row where one differs; "
        "lower holdout_fraction (0 trains on every row), choose another seed, or add rows"
    )


def holdout_split(
    y: npt.NDArray[np.int64], n_classes: int, fraction: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Split row indices into train and holdout, stratified, keeping every class in train.

    Unlike train_test_split(stratify=...), this never fails on a class with one row or a
    holdout smaller than the number of classes: each class keeps at least one training row.
    The core checks the training rows it gives before queueing, the worker trains on them.
    """
    if fraction <= 0:
        return np.arange(len(y), dtype=np.int64), np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed % 2**32)
    train_parts, holdout_parts = [], []
    for label in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == label))
        take = min(round(fraction * len(rows)), len(rows) - 1)
        holdout_parts.append(rows[:take])
        train_parts.append(rows[take:])
    # Sorted, so the training rows keep the data's order, as a user would expect.
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(holdout_parts))


def looks_continuous(target: pa.ChunkedArray, classes: int, rows: int) -> str | None:
    """Say why a target's labels look continuous or like identifiers; None if they do not."""
    value_type = target.type.value_type if pa.types.is_dictionary(target.type) else target.type
    if pa.types.is_floating(value_type):
        values = pc.cast(target, pa.float64()) if value_type != target.type else target
        fractional = pc.sum(pc.not_equal(values, pc.floor(values))).as_py() or 0
        if fractional:
            return f"{fractional} labels have a fractional part"
    if classes > MANY_CLASSES:
        return f"{classes} distinct values, more than {MANY_CLASSES} classes"
    if classes >= FEW_ROWS_CLASSES and rows < MIN_ROWS_PER_CLASS * classes:
        return (
            f"{classes} classes in {rows} rows, fewer than {MIN_ROWS_PER_CLASS} rows per class "
            "on average"
        )
    return None


def build_signature(table: pa.Table, plan: TrainingPlan) -> Signature:
    """Describe the model's inputs (with categories seen) and its classes."""
    features = []
    for name, kind, arrow_type in plan.features:
        column = table.column(name)
        categories = tuple(_distinct_text(column)) if kind is FeatureKind.CATEGORICAL else ()
        features.append(FeatureColumn(name, kind, arrow_type, categories, _missing_count(column)))
    target_type = _target_type(table.schema.field(plan.target).type)
    return Signature(
        features=tuple(features),
        target_column=plan.target,
        target_arrow_type=str(target_type),
        classes=tuple(_distinct_text(table.column(plan.target))),
    )


def encode_target(
    column: pa.ChunkedArray | pa.Array, classes: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Return each label's index in classes; raise ValueError for a label not among them."""
    indices = pc.index_in(category_text(column), value_set=pa.array(list(classes), pa.string()))
    if indices.null_count:
        raise ValueError("some labels are missing or not among the known classes")
    return np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def decode_labels(indices: npt.ArrayLike, signature: Signature) -> pa.Array:
    """Turn class indices back into labels of the target's Arrow type."""
    text = pa.array(signature.classes, pa.string()).take(pa.array(np.asarray(indices, np.int64)))
    return text.cast(_TARGET_TYPES[signature.target_arrow_type])


def feature_table(table: pa.Table, plan: TrainingPlan) -> pa.Table:
    """Return the feature columns in training order."""
    return table.select(plan.feature_names)


def _target_type(arrow_type: pa.DataType) -> pa.DataType | None:
    # A dictionary target gives its labels back in its value type.
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return _TARGET_TYPES.get(str(arrow_type))


def _inferred_kind(arrow_type: pa.DataType) -> FeatureKind | None:
    if pa.types.is_null(arrow_type):
        # Only missing values; check_training_table names the column (or the empty table).
        return FeatureKind.NUMERIC
    if pa.types.is_dictionary(arrow_type):
        value = arrow_type.value_type
        usable = (
            pa.types.is_string(value)
            or pa.types.is_large_string(value)
            or pa.types.is_integer(value)
        )
        return FeatureKind.CATEGORICAL if usable else None
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return FeatureKind.CATEGORICAL
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
    return FeatureKind.NUMERIC if any(test(arrow_type) for test in numeric) else None


# What columns of an Arrow type hold, in a person's words; the type follows in parentheses.
_HOLDING = (
    (pa.types.is_date, "dates"),
    (pa.types.is_timestamp, "dates with times"),
    (pa.types.is_time, "times of day"),
    (pa.types.is_duration, "durations"),
    (pa.types.is_decimal, "decimal numbers"),
    (pa.types.is_list, "lists"),
    (pa.types.is_large_list, "lists"),
    (pa.types.is_fixed_size_list, "lists"),
    (pa.types.is_struct, "nested records"),
    (pa.types.is_map, "maps"),
)


def _holding(arrow_type: pa.DataType) -> str:
    """'dates (Arrow type date32[day])': what a column holds, then its type for the exact."""
    words = next((w for test, w in _HOLDING if test(arrow_type)), "values")
    return f"{words} (Arrow type {arrow_type})"


def _absent(name: str, columns: Mapping[str, pa.DataType]) -> str:
    """'is not in the data', naming the column meant when only case or spaces differ."""
    key = name.strip().casefold()
    near = [c for c in columns if c.strip().casefold() == key]
    return "is not in the data" + (f" (did you mean '{near[0]}'?)" if near else "")


def _type_problem(name: str, arrow_type: pa.DataType, override: FeatureKind | None) -> str | None:
    if _inferred_kind(arrow_type) is None:
        if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
            # What a CSV reader makes of text that is not UTF-8 (a Latin-1 export, say).
            return (
                f"column '{name}' has Arrow type {arrow_type}: bytes, not text; send text as "
                "UTF-8 strings (a CSV in another encoding: save it as UTF-8)"
            )
        if pa.types.is_temporal(arrow_type):
            # A CSV's ISO dates are read as dates, which even declared categorical stay dates.
            return (
                f"column '{name}' holds {_holding(arrow_type)}, which no model kind reads: leave"
                " it out, or make numbers of it (days since a date; the year, month or weekday)"
            )
        return f"column '{name}' holds {_holding(arrow_type)}, which is not supported; {_ACCEPTED}"
    if override is FeatureKind.NUMERIC and pa.types.is_dictionary(arrow_type):
        return f"column '{name}' is a dictionary (categorical) column and cannot be numeric"
    # String columns set to numeric are checked value by value in check_training_table.
    return None


def _numeric_problems(
    name: str, column: pa.ChunkedArray, max_magnitude: float | None, parent_version: int | None
) -> list[FieldViolation]:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column = pc.cast(column, pa.float64())
        except pa.ArrowInvalid as exc:
            text = unparsed_text(exc)
            value = f" ('{text}')" if text is not None else ""
            if parent_version is not None:
                # The types are the parent's, not a choice this request made or can change.
                return [
                    FieldViolation(
                        "dataset",
                        f"column '{name}' held numbers when version {parent_version} was"
                        f" trained, but the new rows hold text that is not a number{value};"
                        " fix the values (a retrain keeps its parent's column types)",
                    )
                ]
            return [
                FieldViolation(
                    f"feature_types.{name}",
                    f"column '{name}' is set to numeric but holds text that is not a number"
                    f"{value}; make it categorical or fix the values",
                )
            ]
    if pa.types.is_floating(column.type) and (infinite := _infinite_count(column)):
        return [
            FieldViolation(
                "feature_columns",
                f"column '{name}' has {infinite} infinite values; "
                "use finite numbers or leave the values empty",
            )
        ]
    if max_magnitude is not None and _missing_count(column) < len(column):
        largest = pc.max(pc.abs(pc.cast(column, pa.float64(), safe=False))).as_py()
        if largest is not None and largest > max_magnitude:
            return [
                FieldViolation(
                    "feature_columns",
                    f"column '{name}' holds values as large as {largest:.6g} in magnitude; "
                    f"this model kind works only with magnitudes up to {max_magnitude:.0e}: "
                    "rescale the column (e.g. divide it by a power of ten)",
                )
            ]
    return []


def _as_read(
    column: pa.ChunkedArray, kind: FeatureKind, feature_float: pa.DataType
) -> pa.ChunkedArray:
    """A feature's values as the kind reads them: numbers as `feature_float`, text as text."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind is FeatureKind.NUMERIC:
        # Unsafe, as values past a float's range become infinite; adding 0 makes -0 the 0 it
        # is to every model.
        numbers = pc.cast(pc.cast(column, pa.float64(), safe=False), feature_float, safe=False)
        column = pc.add(numbers, pa.scalar(0.0, feature_float))
    return column


def _is_constant(
    column: pa.ChunkedArray, kind: FeatureKind, feature_float: pa.DataType = FLOAT64
) -> bool:
    # mode="all" counts a missing value as a value of its own, as the models see it.
    values = _as_read(column, kind, feature_float)
    return int(pc.count_distinct(values, mode="all").as_py()) <= 1


def _varies_past(
    column: pa.ChunkedArray, kind: FeatureKind, feature_float: pa.DataType, held: int
) -> bool:
    """Whether a feature varies in the training rows however `held` rows are held out.

    It could hold one value there only if every row but those of its most common value
    (missing counted as a value) were held out.
    """
    counts = pc.value_counts(_as_read(column, kind, feature_float)).field("counts")
    return len(column) - int(pc.max(counts).as_py() or 0) > held


def _range_text(name: str, column: pa.ChunkedArray) -> str:
    numbers = pc.cast(column, pa.float64(), safe=False)
    return f"column '{name}' holds {pc.min(numbers).as_py():.10g} to {pc.max(numbers).as_py():.10g}"


def _missing_count(column: pa.ChunkedArray) -> int:
    # NaN counts as missing, as the models treat it so.
    return int(pc.sum(column.is_null(nan_is_null=True)).as_py() or 0)


def _infinite_count(column: pa.ChunkedArray) -> int:
    return int(pc.sum(pc.is_inf(column)).as_py() or 0)


def _distinct_text(column: pa.ChunkedArray) -> list[str]:
    values = pc.unique(category_text(column)).drop_null().to_pylist()
    return sorted(values)


def _separator_in(name: str) -> str | None:
    for separator, said in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
        if separator in name:
            return said
    return None


def _names(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
