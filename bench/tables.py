"""Generated training tables, `seed -> Case`, for the table matrix (tests and `bench tables`).

A plain seeded numpy generator rather than hypothesis strategies: a failure is reproduced by
its seed alone, and the cost of each table is bounded up front (rows x columns is capped), so
a fixed list of seeds runs in a known time. Every class appears at least once, and a few
columns carry a weak signal, so the models are neither degenerate nor trivially perfect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Largest rows x feature columns of a table, so wide tables stay quick to train.
MAX_CELLS = 60_000
#: The service's own threshold for a target that looks continuous (issue 10).
MANY_CLASSES = 50

_INT_TYPES = [getattr(pa, f"{s}int{b}")() for s in ("", "u") for b in (8, 16, 32, 64)]
_NUMERIC_TYPES = [*_INT_TYPES, pa.float64(), pa.float32(), pa.bool_()]
_CATEGORICAL_TYPES = [pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string())]
_LABEL_KINDS = ["int", "bool", "float_whole", "float_fraction", "string", "empty_string"]
_LABEL_KINDS += ["dictionary", "large_string"]
T = TypeVar("T")
_ODD_CLASSES = ["label", "proba_a", "Adelie", "a b", "Ünïcode", "名前", "x0", "__missing__"]


@dataclass(frozen=True)
class Case:
    """One generated table, its target, and what the service may legitimately refuse."""

    seed: int
    table: pa.Table
    target: str
    #: Fields a refusal may name; a refusal naming any other field is a failure. "*" = any.
    refusable: frozenset[str]
    #: Ask for more classes than the continuous-target check allows (once the field exists).
    allow_many_classes: bool
    #: Tags saying what is unusual about the table, for summaries and coverage checks.
    traits: frozenset[str] = field(default_factory=frozenset)

    @property
    def features(self) -> list[str]:
        """Return the feature column names, in the table's order."""
        return [name for name in self.table.column_names if name != self.target]

    def describe(self) -> str:
        """Say in one line what the table is, for failure reports."""
        column = self.table.column(self.target)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        classes = pc.count_distinct(column).as_py()
        label_type = self.table.schema.field(self.target).type
        return (
            f"seed {self.seed}: {self.table.num_rows} rows x {len(self.features)} features, "
            f"{classes} classes of {label_type} in {self.target!r}; "
            f"traits: {', '.join(sorted(self.traits)) or 'plain'}"
        )


def generate(seed: int) -> Case:
    """Build the table for `seed`; the same seed always gives the same table."""
    rng = np.random.default_rng(seed)
    traits: set[str] = set()
    refusable: set[str] = set()
    n_classes = _pick(
        rng,
        [
            (2, 45),
            (int(rng.integers(3, 6)), 30),
            (int(rng.integers(6, 13)), 15),
            (int(rng.integers(13, MANY_CLASSES + 1)), 10),
        ],
    )
    n_features = _pick(
        rng,
        [
            (int(rng.integers(1, 9)), 80),
            (int(rng.integers(9, 41)), 15),
            (int(rng.integers(100, 301)), 5),
        ],
    )
    rows = _pick(
        rng,
        [
            (int(rng.integers(2, 13)), 10),
            (int(rng.integers(20, 201)), 65),
            (int(rng.integers(200, 1001)), 20),
            (int(rng.integers(1000, 5001)), 5),
        ],
    )
    if n_features >= 100:
        traits.add("wide")
    sparse = n_classes >= 10 and rng.random() < 0.15
    # Enough rows for every class, and mostly enough for the continuous-target check.
    rows = max(rows, n_classes, 0 if sparse else 5 * n_classes if n_classes >= 10 else 0)
    rows = max(n_classes, min(rows, MAX_CELLS // n_features))
    if n_classes >= 10 and rows < 5 * n_classes:
        traits.add("few_rows_per_class")
        refusable.add("target_column")
    if rows <= 12:
        traits.add("tiny")
    if rows >= 1000:
        traits.add("large")
    if n_classes > 12:
        traits.add("many_classes")
    label_kind = str(
        rng.choice(_LABEL_KINDS if n_classes == 2 else _LABEL_KINDS[:1] + _LABEL_KINDS[2:])
    )
    traits.add(f"label_{label_kind}")
    if label_kind == "float_fraction":
        refusable.add("target_column")
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, rows - n_classes)])
    y = rng.permutation(y)
    target_column, class_texts = _labels(rng, label_kind, n_classes, y)
    mode = _pick(rng, [("mixed", 60), ("all_numeric", 20), ("all_categorical", 20)])
    traits.add(mode)
    names = _Names(rng, class_texts)
    target = names.target()
    columns: dict[str, pa.Array] = {}
    if rng.random() < 0.08:
        # pandas.DataFrame.to_csv() writes its index as a first column with an empty header.
        columns[names.take("")] = pa.array(np.arange(rows), pa.int64())
        traits.add("to_csv_index")
    # A column with no values at all is refused; rare, so wide tables mostly train.
    empty_at = int(rng.integers(0, n_features)) if rng.random() < 0.06 else -1
    for index in range(n_features - len(columns)):
        numeric = mode == "all_numeric" or (mode == "mixed" and rng.random() < 0.5)
        column, column_traits = _feature(rng, y, n_classes, numeric, index == empty_at)
        traits |= column_traits
        columns[names.next()] = column
    traits |= names.traits
    if "all_null_column" in traits:
        refusable.add("feature_columns")
    if "huge_values" in traits:
        refusable.add("*")
    position = int(rng.integers(0, len(columns) + 1))
    items = list(columns.items())
    items.insert(position, (target, target_column))
    table = pa.table(dict(items)) if len({n for n, _ in items}) == len(items) else None
    assert table is not None, "generated names must be unique"
    features = [table.column(name) for name in table.column_names if name != target]
    if any(_all_missing(column) for column in features):
        # Random gaps can empty a column of a tiny table; the service names it, rightly.
        traits.add("all_null_column")
        refusable.add("feature_columns")
    if all(_constant(column) for column in features):
        # Nothing to learn from: the service says so instead of fitting a constant model.
        traits.add("constant_features")
        refusable.add("feature_columns")
    many = rng.random() < 0.15
    return Case(seed, table, target, frozenset(refusable), many, frozenset(traits))


def _pick(rng: np.random.Generator, weighted: list[tuple[T, int]]) -> T:
    weights = np.array([w for _, w in weighted], dtype=float)
    return weighted[int(rng.choice(len(weighted), p=weights / weights.sum()))][0]


def _labels(
    rng: np.random.Generator, kind: str, n_classes: int, y: np.ndarray
) -> tuple[pa.Array, list[str]]:
    """Return the label column for class indices `y` and the class texts."""
    if kind == "bool":
        column = pa.array(y.astype(bool))
    elif kind == "int":
        values = np.sort(rng.choice(np.arange(-20, 200), n_classes, replace=False))
        column = pa.array(values[y]).cast(
            rng.choice([pa.int64(), pa.int16(), pa.uint8()]) if values.min() >= 0 else pa.int64()
        )
    elif kind in ("float_whole", "float_fraction"):
        values = np.arange(n_classes, dtype=float) + (0.5 if kind == "float_fraction" else 0.0)
        column = pa.array(values[y], pa.float32() if rng.random() < 0.3 else pa.float64())
    else:
        pool = [f"c{i}" for i in range(n_classes)]
        odd = rng.permutation(_ODD_CLASSES)[: int(rng.integers(0, min(4, n_classes) + 1))]
        pool[: len(odd)] = list(odd)
        if kind == "empty_string":
            pool[-1] = ""
        text = pa.array(np.array(pool, dtype=object)[y], pa.string())
        column = {
            "dictionary": pc.dictionary_encode(text),
            "large_string": text.cast(pa.large_string()),
        }.get(kind, text)
    texts = pc.unique(
        pc.cast(
            column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column,
            pa.string(),
        )
    ).to_pylist()
    return column, sorted(texts)


def _feature(
    rng: np.random.Generator, y: np.ndarray, n_classes: int, numeric: bool, empty: bool
) -> tuple[pa.Array, set[str]]:
    """Return one feature column, weakly tied to the classes, and its traits."""
    rows = len(y)
    traits: set[str] = set()
    signal = float(rng.choice([0.0, 0.3, 0.8]))
    latent = signal * y / max(1, n_classes - 1) + rng.normal(0, 1, rows)
    missing = "all" if empty else _pick(rng, [("none", 60), ("some", 40)])
    mask = np.zeros(rows, bool)
    if missing == "some":
        mask = rng.random(rows) < rng.uniform(0.05, 0.4)
        traits.add("some_nulls")
    elif missing == "all":
        mask[:] = True
        traits.add("all_null_column")
    if numeric:
        arrow_type = _NUMERIC_TYPES[int(rng.integers(len(_NUMERIC_TYPES)))]
        traits.add(f"feature_{arrow_type}")
        if pa.types.is_boolean(arrow_type):
            return pa.array(latent > np.median(latent), mask=mask), traits
        if pa.types.is_floating(arrow_type):
            scale = 1e300 if rng.random() < 0.02 else float(rng.choice([1e-3, 1.0, 1e4]))
            if scale == 1e300:
                traits.add("huge_values")
            values = latent * scale
            if missing == "some" and rng.random() < 0.3:
                values[mask], mask = np.nan, np.zeros(rows, bool)  # NaN is missing too
                traits.add("nan_values")
            return pa.array(values, mask=mask).cast(arrow_type), traits
        info = np.iinfo(arrow_type.to_pandas_dtype())
        # Mostly small integers; sometimes near the type's limits, which float64 rounds.
        low = float(max(info.min, -(2**62)))
        base = low if rng.random() < 0.2 else 0 if info.min == 0 else -50
        step = 10.0 if base != low else 2.0**40
        values = np.clip(base + np.round((latent + 3) * step), info.min, info.max)
        return pa.array(values.astype(arrow_type.to_pandas_dtype()), mask=mask), traits
    arrow_type = _CATEGORICAL_TYPES[int(rng.integers(len(_CATEGORICAL_TYPES)))]
    traits.add(
        "feature_dictionary" if pa.types.is_dictionary(arrow_type) else f"feature_{arrow_type}"
    )
    levels = int(rng.choice([2, 3, 5, 8, 40]))
    names = np.array([f"v{i}" for i in range(levels)], dtype=object)
    if rng.random() < 0.2:
        names[0], names[-1] = "", "ü ñ 🙂"
        traits.add("odd_categories")
    codes = np.clip(np.round(latent * levels / 4 + levels / 2), 0, levels - 1).astype(int)
    text = pa.array(names[codes], pa.string(), mask=mask)
    if pa.types.is_dictionary(arrow_type):
        return pc.dictionary_encode(text), traits
    return text.cast(arrow_type), traits


class _Names:
    """Column names: mostly plain, sometimes each kind of awkward name a user may bring."""

    def __init__(self, rng: np.random.Generator, class_texts: list[str]) -> None:
        self.rng = rng
        self.class_texts = class_texts
        self.used: set[str] = set()
        self.traits: set[str] = set()
        self.count = 0

    def take(self, name: str) -> str:
        """Reserve `name`, or a suffixed variant when it is taken."""
        while name in self.used:
            name = f"{name}_{self.count}"
        self.used.add(name)
        self.count += 1
        return name

    def target(self) -> str:
        """Name the target: usually plain, sometimes `label` or unicode."""
        choice = _pick(self.rng, [("target", 60), ("label", 15), ("クラス", 10), ("y", 15)])
        if choice != "target":
            self.traits.add(f"target_named_{choice}")
        return self.take(choice)

    def next(self) -> str:
        """Name the next feature column."""
        i = self.count
        kinds = [
            ("plain", 70),
            ("unicode", 5),
            ("spaces", 4),
            ("empty", 2),
            ("long", 3),
            ("class_value", 4),
            ("output", 4),
            ("casefold", 4),
            ("nul", 2),
            ("dots", 2),
        ]
        kind = _pick(self.rng, kinds)
        name = {
            "plain": f"x{i}",
            "unicode": f"température_名前_{i}",
            "spaces": f" col {i} ",
            "empty": "",
            "long": "long_" + "n" * int(self.rng.integers(200, 1000)) + str(i),
            "class_value": str(self.rng.choice(self.class_texts)),
            "output": str(self.rng.choice(["label", f"proba_{self.class_texts[0]}"])),
            "casefold": next(iter(sorted(self.used))).swapcase() if self.used else f"X{i}",
            "nul": f"nul\x00{i}",
            "dots": f"a.b[{i}]",
        }[kind]
        if kind != "plain" and name not in self.used:
            self.traits.add(f"name_{kind}")
        return self.take(name)


def _constant(column: pa.ChunkedArray) -> bool:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return int(pc.count_distinct(column, mode="all").as_py()) <= 1


def _all_missing(column: pa.ChunkedArray) -> bool:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    missing = pc.sum(column.is_null(nan_is_null=True)).as_py() or 0
    return int(missing) == len(column)
