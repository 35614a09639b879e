"""Each kind's predict_proba from Arrow equals the library's own predict_proba on pandas."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import skops.io

from ml_service import dataset, model_input
from ml_service.domain import FeatureKind
from ml_service.errors import InvalidArgument
from ml_service.kinds import FitInput, get_kind
from ml_service.kinds.base import MISSING_CATEGORY, to_frame
from ml_service.kinds.catboost_model import _SMALL_BATCH
from ml_service.kinds.sklearn_pipeline import TRUSTED_TYPES

FAST = {"catboost": {"iterations": 30}, "logistic_regression": {}}
# Rows the CatBoost kind predicts from Python values (model_input.few_rows) or a numpy
# matrix, and from pandas categoricals. "a handful" stays under the few-row paths and still
# holds a missing, a NaN and an unseen category (see awkward()).
SIZES = {"one row": 1, "a handful": 12, "few rows": 37, "many rows": _SMALL_BATCH + 500}


def as_trained(table: pa.Table) -> pa.Table:
    """Widen integer columns to float64, so prediction can send integers where floats were."""
    return pa.table(
        {
            name: column.cast(pa.float64()) if pa.types.is_integer(column.type) else column
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )


def library_proba(kind_name: str, model: Any, features: pa.Table, kinds: Any) -> np.ndarray:
    """Return what the library itself predicts on the DataFrame training builds."""
    missing = MISSING_CATEGORY if kind_name == "catboost" else math.nan
    return np.asarray(model.predict_proba(to_frame(features, kinds, missing)))


def fitted(
    kind_name: str,
    table: pa.Table,
    target: str,
    overrides: dict[str, FeatureKind | str] | None = None,
    **given: Any,
) -> tuple[Any, pa.Table, dict[str, FeatureKind]]:
    """Fit a kind on a whole table; return the model, the features and how each is used."""
    plan = dataset.plan_training(table.schema, target, [], overrides or {})
    signature = dataset.build_signature(table, plan)
    y = dataset.encode_target(table.column(target), signature.classes)
    features = dataset.feature_table(table, plan)
    kind = get_kind(kind_name)
    params = kind.resolve_hyperparameters({**FAST[kind_name], **given})
    n_classes = len(signature.classes)
    model = kind.runtime.fit(
        FitInput(features, y, n_classes, plan.feature_kinds, params, 0, lambda _: None)
    )
    return model, features, plan.feature_kinds


class Case:
    """A model fitted on most rows of a shuffled dataset, and the held-out rest, made awkward."""

    def __init__(self, kind_name: str, table: pa.Table, target: str, holdout: int) -> None:
        # Shuffled: penguins.csv is sorted by species.
        table = as_trained(table).take(np.random.default_rng(0).permutation(table.num_rows))
        train = table.num_rows - holdout
        self.kind_name = kind_name
        self.model, features, self.kinds = fitted(kind_name, table.slice(0, train), target)
        self.rows = awkward(table.slice(train).select(features.column_names), self.kinds)

    def reference(self, rows: pa.Table) -> np.ndarray:
        """Return the library's probabilities for rows of the training types."""
        return library_proba(self.kind_name, self.model, rows, self.kinds)

    def fast(self, rows: pa.Table) -> np.ndarray:
        """Return the kind's probabilities for the rows as prediction hands them to it."""
        runtime = get_kind(self.kind_name).runtime
        return model_input.probabilities(runtime, self.model, rows, list(self.kinds.items()))


def awkward(rows: pa.Table, kinds: dict[str, FeatureKind]) -> pa.Table:
    """Add missing numbers and categories, NaN and categories unseen in training."""
    n = rows.num_rows
    index = np.arange(n)
    numeric = [name for name, kind in kinds.items() if kind is FeatureKind.NUMERIC]
    categorical = [name for name, kind in kinds.items() if kind is FeatureKind.CATEGORICAL]
    columns = dict(zip(rows.column_names, rows.columns, strict=True))
    name = numeric[0]
    columns[name] = pc.if_else(pa.array(index % 7 == 0), None, columns[name])
    name = numeric[-1]
    columns[name] = pc.if_else(pa.array(index % 13 == 1), math.nan, columns[name])
    name = categorical[0]
    columns[name] = pc.if_else(pa.array(index % 5 == 2), None, columns[name])
    name = categorical[-1]
    columns[name] = pc.if_else(pa.array(index % 11 == 3), "Atlantis", columns[name])
    return pa.table(columns)


def strings_to(table: pa.Table, convert: Callable[[pa.ChunkedArray], Any]) -> pa.Table:
    """Apply convert to every string column."""
    return pa.table(
        {
            name: convert(column) if pa.types.is_string(column.type) else column
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )


def whole_numbers_as_integers(table: pa.Table) -> pa.Table:
    """Send float columns holding only whole numbers (nulls allowed) as int64."""
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_floating(column.type) and not pc.any(pc.is_nan(column)).as_py():
            present = column.drop_null().to_numpy()
            if np.array_equal(present, np.round(present)):
                column = column.cast(pa.int64())
        columns[name] = column
    return pa.table(columns)


def in_chunks(table: pa.Table, parts: int = 3) -> pa.Table:
    """Split the rows into chunks."""
    step = max(1, math.ceil(table.num_rows / parts))
    return pa.concat_tables([table.slice(i, step) for i in range(0, table.num_rows, step)])


def dictionary_chunks(table: pa.Table) -> pa.Table:
    """Chunks whose string columns are dictionaries, each chunk with its own dictionary."""
    chunks = in_chunks(table).to_batches()
    encoded = [
        pa.record_batch(
            [c.dictionary_encode() if pa.types.is_string(c.type) else c for c in batch.columns],
            names=batch.schema.names,
        )
        for batch in chunks
    ]
    return pa.Table.from_batches(encoded)


def dictionary_of(column: pa.ChunkedArray, values: pa.Array, codes: np.ndarray) -> pa.Array:
    """A dictionary column with these values and codes (a null code where `codes` < 0)."""
    indices = pa.array(codes, pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, values)


def dictionary_holding_missing(table: pa.Table) -> pa.Table:
    """Dictionaries whose values include the missing value itself, as other writers make."""

    def convert(column: pa.ChunkedArray) -> pa.Array:
        values = pc.unique(column.combine_chunks())
        if not values.null_count:
            values = pa.concat_arrays([values, pa.array([None], pa.string())])
        return dictionary_of(column, values, pc.index_in(column, value_set=values).to_numpy())

    return strings_to(table, convert)


def dictionary_repeating_values(table: pa.Table) -> pa.Table:
    """Dictionaries that hold each value twice, rows alternating between the two codes."""

    def convert(column: pa.ChunkedArray) -> pa.Array:
        values = pc.drop_null(pc.unique(column.combine_chunks()))
        codes = pc.index_in(column, value_set=values).to_numpy(zero_copy_only=False)
        codes = np.where(np.isnan(codes), -1, codes).astype(np.int64)
        second = (np.arange(len(codes)) % 2 == 1) & (codes >= 0)
        codes[second] += len(values)
        return dictionary_of(column, pa.concat_arrays([values, values]), codes)

    return strings_to(table, convert)


def missing_token_spelled_out(table: pa.Table) -> pa.Table:
    """Send the missing token as text where a category is missing: the same category."""
    return strings_to(table, lambda column: pc.fill_null(column, MISSING_CATEGORY))


def reordered_with_extra(table: pa.Table) -> pa.Table:
    """Columns in reverse order, plus one the model never saw."""
    reversed_table = table.select(table.column_names[::-1])
    return reversed_table.append_column("extra", pa.array(["x"] * table.num_rows))


VARIANTS: dict[str, Callable[[pa.Table], pa.Table]] = {
    "as trained": lambda table: table,
    "dictionary": lambda table: strings_to(table, lambda c: c.dictionary_encode()),
    "large_string": lambda table: strings_to(table, lambda c: c.cast(pa.large_string())),
    "integers where training had floats": whole_numbers_as_integers,
    "chunked": in_chunks,
    "dictionaries differing by chunk": dictionary_chunks,
    "dictionary holding the missing value": dictionary_holding_missing,
    "dictionary repeating values": dictionary_repeating_values,
    "missing token as text": missing_token_spelled_out,
    "reordered, extra column": reordered_with_extra,
}


@pytest.fixture(scope="module")
def cases(adult: pa.Table, penguins: pa.Table) -> dict[tuple[str, str], Case]:
    """Both kinds, fitted on binary adult (3,000 rows) and multiclass penguins."""
    adult = adult.slice(0, 3000 + SIZES["many rows"])
    return {
        (kind, name): Case(kind, table, target, holdout)
        for kind in FAST
        for name, table, target, holdout in (
            ("adult", adult, "income", SIZES["many rows"]),
            ("penguins", penguins, "species", 100),
        )
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("data", ["adult", "penguins"])
@pytest.mark.parametrize("kind_name", list(FAST))
def test_fast_path_equals_the_library(
    cases: dict[tuple[str, str], Case], kind_name: str, data: str, size: str, variant: str
) -> None:
    case = cases[kind_name, data]
    rows = case.rows.slice(0, SIZES[size])
    expected = case.reference(rows)
    got = case.fast(VARIANTS[variant](rows))
    assert got.dtype == np.float64
    assert got.shape == expected.shape == (rows.num_rows, 2 if data == "adult" else 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", [name for name in VARIANTS if "dictionar" in name])
@pytest.mark.parametrize("data", ["adult", "penguins"])
@pytest.mark.parametrize("kind_name", list(FAST))
def test_dictionaries_answer_exactly_as_text(
    cases: dict[tuple[str, str], Case], kind_name: str, data: str, variant: str
) -> None:
    # Dictionary-encoded categories (as `mlops predict` sends a CSV's) are looked up once
    # per distinct value; the answers must be the very same numbers as for plain text.
    case = cases[kind_name, data]
    rows = case.rows.slice(0, SIZES["many rows"])
    np.testing.assert_array_equal(case.fast(VARIANTS[variant](rows)), case.fast(rows))


@pytest.mark.parametrize("kind_name", list(FAST))
def test_no_rows_give_no_probabilities(cases: dict[tuple[str, str], Case], kind_name: str) -> None:
    case = cases[kind_name, "penguins"]
    assert case.fast(case.rows.slice(0, 0)).shape == (0, 3)


@pytest.mark.parametrize("kind_name", list(FAST))
def test_booleans_and_integer_categories_as_in_training(kind_name: str) -> None:
    rng = np.random.default_rng(3)
    n = 400
    signal = rng.integers(0, 3, n)
    table = pa.table(
        {
            "flag": pa.array(signal > 0, mask=rng.random(n) < 0.1),
            "switch": pa.array(signal == 2, mask=rng.random(n) < 0.1),
            "level": pa.array(signal * 10, pa.int64(), mask=rng.random(n) < 0.1),
            "size": pa.array(rng.normal(size=n) + signal, mask=rng.random(n) < 0.1),
            "label": pa.array(np.where(rng.random(n) < 0.1, 0, signal)),
        }
    )
    overrides: dict[str, FeatureKind | str] = {
        "switch": FeatureKind.CATEGORICAL,
        "level": FeatureKind.CATEGORICAL,
    }
    model, features, kinds = fitted(kind_name, table, "label", overrides)
    kind = get_kind(kind_name)
    odd = pa.table(
        {
            "flag": pa.array([True, None, False]),
            "switch": pa.array([None, True, False]),
            "level": pa.array([20, 30, None], pa.int32()),
            "size": pa.array([0.5, None, 2.0]),
        }
    )
    for rows in (features, odd):
        np.testing.assert_allclose(
            kind.runtime.predict_proba(model, rows),
            library_proba(kind_name, model, rows, kinds),
            rtol=0,
            atol=1e-6,
        )


@pytest.mark.parametrize(
    "given",
    [
        {"solver": "liblinear", "penalty": "l1", "C": 0.5},
        {"solver": "saga", "penalty": "elasticnet", "max_iter": 200},
        {"penalty": "none", "class_weight": "balanced"},
    ],
    ids=["liblinear-l1", "saga-elasticnet", "no-penalty-balanced"],
)
def test_logistic_regression_settings_keep_the_fast_path_exact(
    bank_small: pa.Table, given: dict[str, Any]
) -> None:
    kind = get_kind("logistic_regression")
    model, features, kinds = fitted(kind.name, bank_small.slice(0, 1000), "y", **given)
    rows = awkward(bank_small.slice(1000, 500).select(features.column_names), kinds)
    np.testing.assert_allclose(
        kind.runtime.predict_proba(model, rows),
        library_proba(kind.name, model, rows, kinds),
        rtol=0,
        atol=1e-6,
    )


def test_a_numeric_column_empty_in_training_predicts_its_fill(adult: pa.Table) -> None:
    table = adult.slice(0, 1000).select(["age", "workclass", "hours-per-week", "income"])
    table = table.set_column(0, "age", pa.nulls(1000, pa.float64()))
    kind = get_kind("logistic_regression")
    model, features, kinds = fitted(kind.name, table, "income")
    rows = adult.slice(2000, 50).select(features.column_names)
    np.testing.assert_allclose(
        kind.runtime.predict_proba(model, rows),
        library_proba(kind.name, model, rows, kinds),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("kind_name", list(FAST))
@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (pa.array([1.0, math.inf, 3.0]), "infinite values"),
        # In the user's words, not Arrow's ("Failed to parse string: 'two' as a scalar ...").
        (pa.array(["1", "two", "3"]), r"must hold numbers \('two' is not a number\)$"),
        (pa.array(["1", "two", "3"]).dictionary_encode(), r"\('two' is not a number\)$"),
        (pa.array([0, 1, 2], pa.timestamp("us")), r"numbers, not timestamp\[us\] values$"),
    ],
    ids=["infinite", "text", "categories", "timestamps"],
)
def test_unusable_numbers_name_the_column(
    cases: dict[tuple[str, str], Case], kind_name: str, values: pa.Array, problem: str
) -> None:
    case = cases[kind_name, "penguins"]
    rows = case.rows.slice(0, 3).set_column(
        case.rows.column_names.index("body_mass_g"), "body_mass_g", values
    )
    with pytest.raises(InvalidArgument, match=problem) as error:
        case.fast(rows)
    assert [v.field for v in error.value.violations] == ["columns.body_mass_g"]


def test_predicting_leaves_the_artifact_as_it_was(
    cases: dict[tuple[str, str], Case], tmp_path: Path
) -> None:
    case = cases["logistic_regression", "penguins"]
    kind = get_kind("logistic_regression")
    before, after = tmp_path / "before.skops", tmp_path / "after.skops"
    kind.runtime.save(case.model, str(before))
    case.fast(case.rows)
    kind.runtime.save(case.model, str(after))
    assert set(skops.io.get_untrusted_types(file=after)) <= set(TRUSTED_TYPES)
    assert before.stat().st_size == after.stat().st_size
    loaded = kind.runtime.load(str(after))
    np.testing.assert_array_equal(
        kind.runtime.predict_proba(loaded, case.rows), case.fast(case.rows)
    )


FEATURES = [
    ("count", FeatureKind.NUMERIC),
    ("ratio", FeatureKind.NUMERIC),
    ("colour", FeatureKind.CATEGORICAL),
]


def test_few_rows_are_python_values_typed_as_the_table_path_types_them() -> None:
    table = pa.table(
        {
            "colour": pa.array(["red", None, "blue"], pa.large_string()),
            "ratio": pa.array([0.5, None, math.nan], pa.float32()),
            "count": pa.array([2**53 + 1, None, -3], pa.int64()),
            "unused": pa.array([b"x", b"y", b"z"]),
        }
    )
    rows = model_input.few_rows(table, FEATURES)
    assert rows is not None
    # The values of build's typed table, a missing number as NaN (as the kinds read it) and
    # a missing category as None, in training order whatever the table's column order.
    built = model_input.build(table, FEATURES).to_pylist()
    expected = [
        [math.nan if row[name] is None else row[name] for name in ("f0", "f1")] + [row["f2"]]
        for row in built
    ]
    assert [[str(value) for value in row] for row in rows] == [
        [str(value) for value in row] for row in expected
    ]
    assert rows[0] == [float(2**53), 0.5, "red"]
    assert rows[2][0] == -3.0 and rows[1][2] is None and math.isnan(rows[2][1])


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"count": [1], "ratio": [0.5], "colour": pa.array(["red"]).dictionary_encode()}),
        pa.table({"count": [True], "ratio": [0.5], "colour": ["red"]}),
        pa.table({"count": ["1"], "ratio": [0.5], "colour": ["red"]}),
        pa.table({"count": [1], "ratio": [math.inf], "colour": ["red"]}),
        pa.table({"count": [1], "ratio": [0.5], "colour": [7]}),
        pa.table({"count": [1] * 17, "ratio": [0.5] * 17, "colour": ["red"] * 17}),
        pa.table({"count": pa.array([], pa.int64()), "ratio": [], "colour": []}),
    ],
    ids=["dictionary", "booleans", "text-number", "infinity", "number-category", "17-rows", "none"],
)
def test_few_rows_leave_to_the_table_path_what_it_converts_or_refuses(table: pa.Table) -> None:
    assert model_input.few_rows(table, FEATURES) is None
