"""Training data: column choice and typing, data checks, signature, label encoding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ml_service import dataset
from ml_service.domain import FeatureKind
from ml_service.errors import InvalidArgument

NUMERIC, CATEGORICAL = FeatureKind.NUMERIC, FeatureKind.CATEGORICAL


def plan_problems(
    schema: pa.Schema,
    target: str,
    features: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Return the (field, description) pairs plan_training raises."""
    with pytest.raises(InvalidArgument) as error:
        dataset.plan_training(schema, target, features, overrides or {})
    return [(v.field, v.description) for v in error.value.violations]


def table_problems(table: pa.Table, target: str, **overrides: Any) -> list[tuple[str, str]]:
    """Return the (field, description) pairs check_training_table raises."""
    plan = dataset.plan_training(table.schema, target, [], overrides)
    with pytest.raises(InvalidArgument) as error:
        dataset.check_training_table(table, plan)
    return [(v.field, v.description) for v in error.value.violations]


def test_adult_columns_are_typed_from_arrow(adult: pa.Table) -> None:
    plan = dataset.plan_training(adult.schema, "income", [], {})
    assert plan.target == "income"
    assert plan.feature_names == [name for name in adult.column_names if name != "income"]
    assert plan.feature_kinds["age"] is NUMERIC
    assert plan.feature_kinds["workclass"] is CATEGORICAL
    assert ("age", NUMERIC, "int64") in plan.features


def test_chosen_columns_keep_their_order_and_take_overrides(adult: pa.Table) -> None:
    plan = dataset.plan_training(
        adult.schema, "income", ["sex", "education-num", "age"], {"education-num": "categorical"}
    )
    assert plan.features == (
        ("sex", CATEGORICAL, "string"),
        ("education-num", CATEGORICAL, "int64"),
        ("age", NUMERIC, "int64"),
    )


SCHEMA = pa.schema(
    [
        ("label", pa.string()),
        ("age", pa.int64()),
        ("city", pa.string()),
        ("colour", pa.dictionary(pa.int32(), pa.string())),
    ]
)

PLAN_CASES = [
    ("", [], {}, "target_column", "is required"),
    ("income", [], {}, "target_column", "column 'income' is not in the data; columns in the data:"),
    ("label", ["age", "label"], {}, "feature_columns", "'label' is the target"),
    ("label", [], {"label": "numeric"}, "feature_types.label", "is the target"),
    ("label", ["age", "height"], {}, "feature_columns", "column 'height' is not in the data"),
    ("label", [], {"height": "numeric"}, "feature_types.height", "not in the data"),
    ("label", ["age"], {"city": "categorical"}, "feature_types.city", "not among feature_columns"),
    ("label", [], {"age": "ordinal"}, "feature_types.age", "'numeric' or 'categorical'"),
    ("label", ["age", "age"], {}, "feature_columns", "column 'age' is listed 2 times"),
    ("label", [], {"colour": "numeric"}, "feature_types.colour", "cannot be numeric"),
]


@pytest.mark.parametrize(("target", "features", "overrides", "field", "text"), PLAN_CASES)
def test_each_schema_problem_is_one_violation(
    target: str, features: list[str], overrides: dict[str, str], field: str, text: str
) -> None:
    [(got_field, description)] = plan_problems(SCHEMA, target, features, overrides)
    assert got_field == field
    assert text in description


@pytest.mark.parametrize(
    ("arrow_type", "holds"),
    [
        (pa.timestamp("s"), "dates with times (Arrow type timestamp[s]), which no model kind"),
        (pa.date32(), "dates (Arrow type date32[day]), which no model kind reads: leave it out"),
        (pa.list_(pa.int64()), "lists (Arrow type list<item: int64>), which is not supported"),
        (pa.struct([("x", pa.int64())]), "nested records (Arrow type struct<x: int64>), which"),
        (pa.map_(pa.string(), pa.int64()), "maps (Arrow type map<string, int64>), which is not"),
        (pa.binary(), "Arrow type binary: bytes, not text"),
    ],
    ids=lambda v: str(v)[:24],
)
def test_unsupported_feature_types_are_refused(arrow_type: pa.DataType, holds: str) -> None:
    # Said in Arrow's words alone ("has Arrow type date32[day]"): what the column holds first.
    schema = pa.schema([("label", pa.string()), ("odd", arrow_type), ("age", pa.int64())])
    [(field, description)] = plan_problems(schema, "label")
    assert field == "feature_columns"
    assert description.startswith("column 'odd' ") and holds in description


def test_bytes_are_refused_saying_text_must_be_utf8() -> None:
    schema = pa.schema([("label", pa.string()), ("island", pa.binary()), ("age", pa.int64())])
    [(field, description)] = plan_problems(schema, "label")
    assert (field, description) == (
        "feature_columns",
        "column 'island' has Arrow type binary: bytes, not text; send text as UTF-8 strings (a"
        " CSV in another encoding: save it as UTF-8)",
    )


def test_a_csv_of_another_separator_is_told_so() -> None:
    schema = pa.schema([("species\tisland\tmass", pa.string())])
    [(field, description)] = plan_problems(schema, "species")
    assert field == "target_column"
    assert description.endswith(
        "columns in the data: 'species\tisland\tmass' (one column: a CSV separated by tabs"
        " rather than commas?)"
    )


def test_unsupported_target_type_is_refused() -> None:
    schema = pa.schema([("label", pa.list_(pa.string())), ("age", pa.int64())])
    [(field, description)] = plan_problems(schema, "label")
    assert field == "target_column"
    assert description.startswith(
        "column 'label' holds lists (Arrow type list<item: string>), which cannot be class"
        " labels; accepted: strings"
    )


def test_duplicate_column_names_are_refused() -> None:
    schema = pa.schema([("label", pa.string()), ("age", pa.int64()), ("age", pa.float64())])
    [(field, description)] = plan_problems(schema, "label")
    assert (field, description) == (
        "feature_columns",
        "column 'age' appears 2 times in the data; column names must be unique",
    )


def test_a_table_with_only_the_target_has_no_features() -> None:
    [(field, description)] = plan_problems(pa.schema([("label", pa.string())]), "label")
    assert field == "feature_columns"
    assert "no feature columns are left" in description


def test_a_table_of_no_columns_is_said_to_have_none() -> None:
    # A DataFrame of an index only: was "…; columns in the data: " with nothing after it.
    problems = plan_problems(pa.schema([]), "species")
    assert ("target_column", "column 'species' is not in the data; the data has no columns") in (
        problems
    )


def test_several_schema_problems_are_reported_together() -> None:
    problems = plan_problems(SCHEMA, "label", ["age", "height", "age"], {"weight": "numeric"})
    assert sorted(field for field, _ in problems) == [
        "feature_columns",
        "feature_columns",
        "feature_types.weight",
    ]


def test_a_missing_feature_with_a_type_is_named_once() -> None:
    # A retrain whose new data lacks a feature: its type is the parent's, which the user
    # never sent; it was named under feature_types and again under feature_columns.
    problems = plan_problems(SCHEMA, "label", ["age", "depth"], {"depth": "numeric"})
    assert [field for field, _ in problems] == ["feature_columns"]
    assert "column 'depth' is not in the data" in problems[0][1]


def labelled(label: list[Any], label_type: pa.DataType | None = None, **columns: Any) -> pa.Table:
    """Build a table with a label column and a default numeric feature."""
    data = {"label": pa.array(label, label_type or pa.string())}
    data.update(columns or {"x": pa.array(range(len(label)), pa.int64())})
    return pa.table(data)


def test_an_empty_table_is_refused() -> None:
    table = labelled([], x=pa.array([]))  # an empty list infers Arrow type null
    [(field, description)] = table_problems(table, "label")
    assert (field, description) == ("dataset", "the training data has no rows")


def test_a_column_of_arrow_type_null_is_named_as_empty() -> None:
    table = labelled(["a", "b"], x=pa.array([1, 2]), nothing=pa.nulls(2))
    [(field, description)] = table_problems(table, "label")
    assert field == "feature_columns"
    assert "column 'nothing' has no values (all 2 rows are missing)" in description
    [(field, description)] = table_problems(labelled([None, None], pa.null()), "label")
    assert field == "target_column"
    assert "has 2 missing labels (null or NaN) in 2 rows" in description


def test_missing_labels_are_counted() -> None:
    [(field, description)] = table_problems(labelled(["a", None, "b", None]), "label")
    assert field == "target_column"
    assert "has 2 missing labels (null or NaN) in 4 rows" in description


def test_nan_and_infinite_float_labels_are_refused() -> None:
    problems = table_problems(
        labelled([1.0, float("nan"), float("inf"), 0.0], pa.float64()), "label"
    )
    assert [field for field, _ in problems] == ["target_column", "target_column"]
    assert "1 missing labels" in problems[0][1]
    assert "1 infinite labels" in problems[1][1]


def test_a_single_class_is_refused() -> None:
    [(field, description)] = table_problems(labelled(["yes", "yes", "yes"]), "label")
    assert field == "target_column"
    assert "has one class only ('yes'); a classifier needs two or more" in description


def test_too_many_classes_are_refused() -> None:
    table = labelled([str(i) for i in range(dataset.MAX_CLASSES + 1)])
    [(field, description)] = table_problems(table, "label")
    assert field == "target_column"
    assert "1001 distinct values" in description


def test_every_empty_feature_column_is_named() -> None:
    table = labelled(
        ["a", "b", "a"],
        empty_text=pa.array([None, None, None], pa.string()),
        empty_number=pa.array([None, float("nan"), None], pa.float64()),
        fine=pa.array([1, 2, 3]),
    )
    problems = table_problems(table, "label")
    assert [field for field, _ in problems] == ["feature_columns", "feature_columns"]
    assert "column 'empty_text' has no values (all 3 rows are missing)" in problems[0][1]
    assert "column 'empty_number'" in problems[1][1]


def test_infinite_feature_values_are_refused() -> None:
    table = labelled(["a", "b"], x=pa.array([1.0, float("-inf")]))
    [(field, description)] = table_problems(table, "label")
    assert field == "feature_columns"
    assert "column 'x' has 1 infinite values" in description


def test_text_set_to_numeric_must_parse() -> None:
    good = labelled(["a", "b", "a"], size=pa.array(["1.5", None, "2"]))
    plan = dataset.plan_training(good.schema, "label", [], {"size": "numeric"})
    dataset.check_training_table(good, plan)
    bad = labelled(["a", "b"], size=pa.array(["1.5", "large"]))
    [(field, description)] = table_problems(bad, "label", size="numeric")
    assert field == "feature_types.size"
    assert description == (  # the value, not a cut of Arrow's "Failed to parse string: ..."
        "column 'size' is set to numeric but holds text that is not a number ('large'); make"
        " it categorical or fix the values"
    )


def test_signature_lists_categories_nulls_and_classes(penguins: pa.Table) -> None:
    plan = dataset.plan_training(penguins.schema, "species", [], {"year": "categorical"})
    signature = dataset.build_signature(penguins, plan)
    columns = {column.name: column for column in signature.features}
    assert columns["sex"].categories == ("female", "male")
    assert columns["sex"].null_count == 11
    assert columns["bill_length_mm"].null_count == 2
    assert columns["bill_length_mm"].categories == ()
    assert columns["year"].categories == ("2007", "2008", "2009")
    assert signature.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert signature.target_arrow_type == "string"
    assert [column.name for column in signature.features] == plan.feature_names


LABELS = [
    (pa.array(["no", "yes", "no"]), ("no", "yes"), "string"),
    (pa.array(["b", "a"], pa.large_string()), ("a", "b"), "large_string"),
    (pa.array(["x", "y", "x"]).dictionary_encode(), ("x", "y"), "string"),
    (pa.array([2, 10, 1], pa.int64()), ("1", "10", "2"), "int64"),
    (pa.array([-3, 7], pa.int8()), ("-3", "7"), "int8"),
    (pa.array([True, False, True]), ("false", "true"), "bool"),
    (pa.array([0.5, 1.0, 0.5]), ("0.5", "1"), "double"),
]


@pytest.mark.parametrize(("labels", "classes", "arrow_type"), LABELS, ids=lambda v: str(v)[:20])
def test_labels_encode_and_decode_in_their_own_type(
    labels: pa.Array, classes: tuple[str, ...], arrow_type: str
) -> None:
    table = pa.table({"label": labels, "x": pa.array(range(len(labels)))})
    plan = dataset.plan_training(table.schema, "label", [], {})
    signature = dataset.build_signature(table, plan)
    assert signature.classes == classes
    assert signature.target_arrow_type == arrow_type
    indices = dataset.encode_target(table.column("label"), signature.classes)
    assert indices.dtype == np.int64
    decoded = dataset.decode_labels(indices, signature)
    expected = labels.dictionary_decode() if pa.types.is_dictionary(labels.type) else labels
    assert decoded.equals(expected)


def test_numbers_and_decimals_are_numeric_and_may_become_categories() -> None:
    table = pa.table(
        {
            "label": ["a", "b"],
            "price": pa.array([Decimal("1.50"), None], pa.decimal128(5, 2)),
            "seen": pa.array([True, None]),
            "when": pa.array([datetime(2024, 1, 1), None]),
        }
    )
    plan = dataset.plan_training(table.schema, "label", ["price", "seen"], {"seen": "categorical"})
    assert plan.feature_kinds == {"price": NUMERIC, "seen": CATEGORICAL}
    signature = dataset.build_signature(table, plan)
    assert signature.features[1].categories == ("true",)


def decorated_problems(price: pa.ChunkedArray | pa.Array, /, **overrides: Any) -> list[str]:
    """What check_training_table says of a text column 'price' beside a varying x."""
    rows = len(price)
    table = pa.table({"x": np.arange(rows) % 7, "price": price, "y": ["a", "b"] * (rows // 2)})
    plan = dataset.plan_training(table.schema, "y", [], overrides)
    try:
        dataset.check_training_table(table, plan)
    except InvalidArgument as error:
        return [v.description for v in error.violations]
    return []


def test_large_columns_of_decorated_numbers_are_found_from_a_sample_then_in_full() -> None:
    dollars = [f"${i * 3.25:,.2f}" for i in range(20_000)]
    # Sorted: the small amounts, without separators, first; the column in two chunks.
    both = pa.chunked_array([pa.array(dollars[:7_000]), pa.array(dollars[7_000:])])
    [said] = decorated_problems(both)
    assert "a currency sign and thousands separators ('$1,001.00')" in said
    # A dictionary (a pandas categorical, Parquet) is the same text.
    assert decorated_problems(both.combine_chunks().dictionary_encode()) == [said]
    assert decorated_problems(both, price=CATEGORICAL) == []
    # Nearly all missing: its few values decide.
    sparse = pa.array([None] * 19_990 + [f"{i}%" for i in range(10)])
    assert decorated_problems(sparse)[0].startswith(
        "column 'price' holds numbers written with a percent"
    )


@pytest.mark.parametrize(
    "values",
    [
        # 6% of the rows not numbers, past the 95% that refuses (the sample sees numbers).
        [f"${i:.2f}" for i in range(18_800)] + ["unknown"] * 1_200,
        # Fewer than 5 distinct numbers: codes, not amounts.
        ["5%", "10%", "15%", "20%"] * 5_000,
        # Plain digits only: text on purpose (zero-padded codes).
        [f"{i % 900:05d}" for i in range(20_000)],
        # Letters after numbers that are no unit: resolutions, sizes, grades.
        [f"{i % 50}{'KpGA'[i % 4]}" for i in range(20_000)],
    ],
    ids=["6%-text", "4-distinct", "plain-digits", "not-units"],
)
def test_text_that_is_not_mostly_decorated_numbers_is_left_categorical(values: list[str]) -> None:
    assert decorated_problems(pa.array(values)) == []


def grouped(n: int, first: int, groups: int, parted: str, sign: str = "") -> list[str]:
    """n different numbers, each a group of `first` digits, then `groups` more of 3, parted."""
    rng = np.random.default_rng(5)
    heads = rng.integers(10 ** (first - 1), 10**first, n)
    tails = rng.integers(0, 1000, (n, groups))
    return [
        sign + parted.join([str(head), *(f"{t:03d}" for t in row)])
        for head, row in zip(heads, tails, strict=True)
    ]


def varied(parted: str, decimals: str = "") -> list[str]:
    """2,000 amounts from 1 to over a million, their thousands parted: '1 003', '1 000 006'."""
    return [f"{10 ** (i % 7) + i:,}".replace(",", parted) + decimals for i in range(2_000)]


@pytest.mark.parametrize(
    "values",
    [
        grouped(2_000, 3, 2, " "),  # phone numbers: "123 456 789"
        grouped(2_000, 2, 3, " ", "+"),  # "+48 123 456 789"
        grouped(2_000, 2, 2, "."),  # national ids: "12.345.678"
        grouped(2_000, 3, 3, "."),  # addresses of three-digit parts: "192.168.100.200"
        grouped(2_000, 1, 2, "."),  # versions: "1.234.567"
        [f"+44 20 {i % 9000 + 1000} {i * 7 % 9000 + 1000}" for i in range(2_000)],
        [f"0{i % 90 + 10} {i * 7919 % 9_000_000 + 1_000_000}" for i in range(2_000)],
        [f"{i % 90_000 + 10_000}-{i * 7 % 9_000 + 1_000}" for i in range(2_000)],  # ZIP+4
        [f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}" for i in range(2_000)],
        [f"{i % 28 + 1:02d}.{i % 12 + 1:02d}.2024" for i in range(2_000)],
        [f"{i % 24}:{i % 60:02d}" for i in range(2_000)],
        [f"{i % 9 + 1}.{i % 20}.{i % 30}" for i in range(2_000)],
        [f"{i % 223 + 1}.{i % 256}.{i * 7 % 256}.{i * 13 % 256}" for i in range(2_000)],
    ],
    ids=[
        "phone-3-3-3", "phone-plus", "id-dots", "address-dots", "version-groups", "phone-uk",
        "phone-area-code", "zip4", "iso-date", "dotted-date", "time", "version", "ip-address",
    ],
)  # fmt: skip
def test_phone_numbers_and_ids_written_in_groups_are_not_taken_for_amounts(
    values: list[str],
) -> None:
    assert decorated_problems(pa.array(values)) == []


@pytest.mark.parametrize(
    ("values", "said"),
    [
        # Amounts of varied magnitudes in groups of three, as phone numbers are written.
        (varied(" "), "thousands separators ('1 003')"),
        (varied(","), "thousands separators ('1,003')"),
        (varied(" ", ".5"), "thousands separators ('1 003.5')"),
        (varied("."), "thousands separators ('1.000.006')"),
        # All of one shape, but commas or no-break spaces part the thousands of amounts only.
        (grouped(2_000, 1, 2, ","), "thousands separators ('"),
        (grouped(2_000, 3, 2, "\u00a0"), "thousands separators ('"),
        # Prices and shares are amounts whatever their shape.
        (grouped(2_000, 3, 2, ",", "$"), "a currency sign and thousands separators ('$"),
        ([f"{i % 100}%" for i in range(2_000)], "a percent sign ('0%')"),
    ],
    ids=[
        "spaces-varied", "commas-varied", "spaces-decimals", "dots-varied", "commas-one-shape",
        "no-break-spaces-one-shape", "dollars-one-shape", "percent",
    ],
)  # fmt: skip
def test_amounts_in_groups_of_three_are_still_refused(values: list[str], said: str) -> None:
    [problem] = decorated_problems(pa.array(values))
    assert problem.startswith("column 'price' holds numbers written with ")
    assert said in problem
