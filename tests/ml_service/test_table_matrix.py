"""The generated-table matrix over gRPC: any table a user brings trains or is refused cleanly.

Each seed is one table (bench.tables); each table is tried with both kinds through a real
service, and a trained model must predict its own rows as the library itself does. The
fixed seeds run in CI; `--table-minutes N` adds a run of new seeds for N minutes.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator

import grpc
import pytest

from bench.table_check import KINDS, TableChecker
from bench.tables import generate
from tests.conftest import ServiceThread, service_settings

#: Seeds the CI run covers; test_ci_seeds_cover_every_kind_of_table keeps them meaningful.
CI_SEEDS = (*range(64), 79)  # 79: ten or more classes with few rows each

#: What the CI seeds must include between them, so a generator change cannot thin them out.
REQUIRED_TRAITS = {
    "wide",
    "tiny",
    "large",
    "many_classes",
    "few_rows_per_class",
    "all_numeric",
    "all_categorical",
    "mixed",
    "to_csv_index",
    "all_null_column",
    "some_nulls",
    "nan_values",
    "huge_values",
    "odd_categories",
    "target_named_label",
    "target_named_クラス",
    *(
        f"name_{n}"
        for n in (
            "unicode",
            "spaces",
            "empty",
            "long",
            "class_value",
            "output",
            "casefold",
            "nul",
            "dots",
        )
    ),
    *(
        f"label_{n}"
        for n in (
            "int",
            "bool",
            "float_whole",
            "float_fraction",
            "string",
            "empty_string",
            "dictionary",
            "large_string",
        )
    ),
    *(
        f"feature_{n}"
        for n in (
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float",
            "double",
            "bool",
            "string",
            "large_string",
            "dictionary",
        )
    ),
}

case = functools.lru_cache(maxsize=None)(generate)


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TableChecker]:
    """One service for the whole matrix (starting one costs seconds)."""
    settings = service_settings(tmp_path_factory.mktemp("store"))
    service = ServiceThread(settings).start()
    threads = max(1, (os.cpu_count() or 1) // settings.max_concurrent_trainings)
    with grpc.insecure_channel(service.target) as channel:
        yield TableChecker(channel, threads)
    service.stop()


def test_ci_seeds_cover_every_kind_of_table() -> None:
    seen = set().union(*(case(seed).traits for seed in CI_SEEDS))
    assert seen >= REQUIRED_TRAITS, f"no CI seed makes {sorted(REQUIRED_TRAITS - seen)}"


def test_a_seed_always_makes_the_same_table() -> None:
    # A failure is reported by its seed alone, so the seed must be enough to reproduce it.
    for seed in CI_SEEDS[:8]:
        again = generate(seed)
        assert again.table.equals(case(seed).table) and again.target == case(seed).target


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_table_trains_or_is_refused_and_predicts_like_the_library(
    checker: TableChecker, seed: int, kind: str
) -> None:
    table = case(seed)
    outcome = checker.check(table, kind)
    assert outcome.status != "failed", f"{table.describe()}\n{outcome}"


@pytest.mark.table_minutes
def test_new_seeds_for_the_given_minutes(
    checker: TableChecker, pytestconfig: pytest.Config
) -> None:
    minutes: float = pytestconfig.getoption("table_minutes")
    seed = int(pytestconfig.getoption("table_seed") or time.time_ns() % 10**9)
    until = time.monotonic() + minutes * 60
    failures: list[str] = []
    tried = 0
    while time.monotonic() < until:
        table = case(seed + tried)
        failures += [
            f"{table.describe()}\n  {o}"
            for o in (checker.check(table, k) for k in KINDS)
            if o.status == "failed"
        ]
        tried += 1
    assert not failures, (
        f"{len(failures)} failures in {tried} tables from seed {seed}:\n" + "\n".join(failures)
    )
