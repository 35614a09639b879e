"""Fixtures for the ML core: the real datasets as Arrow tables, read once per session."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

# The datasets live beside the repository, in ../shared/data.
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def read_dataset(path: Path) -> pa.Table:
    """Read a dataset CSV as users send it: an empty field is a missing value."""
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    return pacsv.read_csv(path, convert_options=options)


@pytest.fixture(scope="session")
def adult() -> pa.Table:
    """UCI Adult: 32,561 rows, binary target `income`, missing categories."""
    return read_dataset(DATA_DIR / "adult.csv")


@pytest.fixture(scope="session")
def penguins() -> pa.Table:
    """Palmer penguins: 344 rows, three classes in `species`, missing numbers and categories."""
    return read_dataset(DATA_DIR / "penguins.csv")


@pytest.fixture(scope="session")
def bank_small() -> pa.Table:
    """UCI Bank Marketing, 10% sample: 4,521 rows, binary target `y` ("yes"/"no")."""
    return read_dataset(DATA_DIR / "bank_marketing_small.csv")
