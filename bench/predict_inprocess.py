"""In-process prediction: the library's predict_proba on pandas vs each kind's from Arrow.

Trains both kinds on adult.csv with their default settings, repeats the rows to --rows, and
measures, for each kind: (a) the baseline a user would write, the library model's
`predict_proba(pandas DataFrame)` on all rows at once; (b) `kind.runtime.predict_proba(model, Arrow
table)` on the same rows, whole and in 64k-row batches (as a stream sends them); and the
median single-row time of both over --calls calls, ours as the service hands a row over
(`model_input.probabilities`, typing included). Throughputs are medians of --repeats runs,
the two sides taking turns so a busy machine slows both alike. Prints a table and, as its
last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ml_service import dataset, model_input
from ml_service.domain import FeatureKind
from ml_service.kinds import FitInput, get_kind
from ml_service.kinds.base import MISSING_CATEGORY, to_frame

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "adult.csv"
KIND_NAMES = ("logistic_regression", "catboost")
BATCH_ROWS = 65536


def read_adult(path: Path = DATA) -> pa.Table:
    """Read adult.csv as users send it: an empty field is a missing value."""
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    return pacsv.read_csv(path, convert_options=options)


def train(kind_name: str, table: pa.Table, target: str) -> tuple[Any, pa.Table, dict[str, Any]]:
    """Fit a kind with its default settings; return the model, features and feature kinds."""
    plan = dataset.plan_training(table.schema, target, [], {})
    signature = dataset.build_signature(table, plan)
    y = dataset.encode_target(table.column(target), signature.classes)
    features = dataset.feature_table(table, plan)
    kind = get_kind(kind_name)
    params = kind.resolve_hyperparameters({})
    n_classes = len(signature.classes)
    model = kind.runtime.fit(
        FitInput(features, y, n_classes, plan.feature_kinds, params, 0, lambda _: None)
    )
    return model, features, plan.feature_kinds


def user_frame(kind_name: str, features: pa.Table, kinds: dict[str, FeatureKind]) -> pd.DataFrame:
    """Return the DataFrame a user would pass: float64 numbers, object-dtype categories."""
    # CatBoost refuses NaN in a categorical column; scikit-learn's imputer wants NaN.
    missing: object = MISSING_CATEGORY if kind_name == "catboost" else math.nan
    return to_frame(features, kinds, missing)


def seconds(call: Callable[[], object]) -> float:
    """Return how long one call takes."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def baseline(kind_name: str, model: Any, frame: pd.DataFrame, repeats: int = 3) -> float:
    """Return rows/s of the library model's own predict_proba on a pandas DataFrame."""
    del kind_name  # both libraries take the DataFrame the same way
    return len(frame) / statistics.median(
        seconds(lambda: model.predict_proba(frame)) for _ in range(repeats)
    )


def ours(kind_name: str, model: Any, table: pa.Table, batch_rows: int | None = None) -> float:
    """Return rows/s of the kind's predict_proba on an Arrow table, whole or in batches."""
    kind = get_kind(kind_name)
    step = batch_rows or table.num_rows
    parts = [table.slice(start, step) for start in range(0, table.num_rows, step)]
    return table.num_rows / seconds(
        lambda: [kind.runtime.predict_proba(model, part) for part in parts]
    )


def single_row_ms(call: Callable[[], object], calls: int) -> float:
    """Return the median time of one call, in milliseconds."""
    call()  # warm up
    return statistics.median(seconds(call) for _ in range(calls)) * 1000


def measure(
    kind_name: str, adult: pa.Table, rows: int, repeats: int, calls: int
) -> dict[str, float]:
    """Train one kind on adult and compare the baseline with the kind's fast path."""
    started = time.perf_counter()
    model, features, kinds = train(kind_name, adult, "income")
    trained = time.perf_counter() - started
    copies = math.ceil(rows / features.num_rows)
    table = pa.concat_tables([features] * copies).slice(0, rows).combine_chunks()
    frame = user_frame(kind_name, table, kinds)
    kind = get_kind(kind_name)
    # Same rows, same answers: a benchmark of a wrong result would be meaningless.
    sample = table.slice(0, 5000)
    diff = abs(
        kind.runtime.predict_proba(model, sample) - model.predict_proba(frame.iloc[:5000])
    ).max()
    assert diff <= 1e-6, f"{kind_name}: fast path differs from the library by {diff}"
    base, whole, batched = [], [], []
    for _ in range(repeats):
        base.append(baseline(kind_name, model, frame, repeats=1))
        whole.append(ours(kind_name, model, table))
        batched.append(ours(kind_name, model, table, BATCH_ROWS))
    one_table = table.slice(7, 1)
    one_frame = frame.iloc[7:8]
    base_ms = single_row_ms(lambda: model.predict_proba(one_frame), calls)
    # As the service hands a row over: typed by model_input, or as Python values where
    # the kind takes them (model_input.probabilities); the feature list is built once, as
    # a loaded model builds it.
    in_order = list(kinds.items())
    ours_ms = single_row_ms(
        lambda: model_input.probabilities(kind.runtime, model, one_table, in_order), calls
    )
    base_rate = statistics.median(base)
    return {
        "train_s": trained,
        "rows": rows,
        "baseline_rows_per_s": base_rate,
        "arrow_rows_per_s": statistics.median(whole),
        "arrow_64k_batches_rows_per_s": statistics.median(batched),
        "ratio_64k_batches_to_baseline": statistics.median(batched) / base_rate,
        "baseline_single_row_ms": base_ms,
        "arrow_single_row_ms": ours_ms,
        "max_abs_diff": float(diff),
    }


def main(argv: list[str]) -> None:
    """Run the comparison for both kinds and print a table, then one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench predict_inprocess")
    parser.add_argument("--rows", type=int, default=200_000, help="rows to predict")
    parser.add_argument("--repeats", type=int, default=5, help="runs per throughput")
    parser.add_argument("--calls", type=int, default=2000, help="single-row calls per side")
    parser.add_argument("--quick", action="store_true", help="100k rows, 3 runs, 300 calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats, args.calls = 100_000, 3, 300
    adult = read_adult()
    results = {
        name: measure(name, adult, args.rows, args.repeats, args.calls) for name in KIND_NAMES
    }
    header = (
        f"{'kind':<20} {'baseline rows/s':>16} {'arrow rows/s':>13} {'64k batches':>12} "
        f"{'ratio':>6} {'1 row base ms':>14} {'1 row arrow ms':>15}"
    )
    print(header)
    for name, r in results.items():
        print(
            f"{name:<20} {r['baseline_rows_per_s']:>16,.0f} {r['arrow_rows_per_s']:>13,.0f} "
            f"{r['arrow_64k_batches_rows_per_s']:>12,.0f} "
            f"{r['ratio_64k_batches_to_baseline']:>5.2f}x "
            f"{r['baseline_single_row_ms']:>14.3f} {r['arrow_single_row_ms']:>15.3f}"
        )
    print(json.dumps({"benchmark": "predict_inprocess", **results}))


if __name__ == "__main__":
    main(sys.argv[1:])
