"""Fixtures for the ML core: the real datasets as Arrow tables, read once per session."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.conftest import DATA_DIR
from tests.ml_service.helpers import read_csv


@pytest.fixture(scope="session")
def adult() -> pa.Table:
    """UCI Adult: 32,561 rows, binary target `income`, missing categories."""
    return read_csv(DATA_DIR / "adult.csv")


@pytest.fixture(scope="session")
def penguins() -> pa.Table:
    """Palmer penguins: 344 rows, three classes in `species`, missing numbers and categories."""
    return read_csv(DATA_DIR / "penguins.csv")


@pytest.fixture(scope="session")
def bank_small() -> pa.Table:
    """UCI Bank Marketing, 10% sample: 4,521 rows, binary target `y` ("yes"/"no")."""
    return read_csv(DATA_DIR / "bank_marketing_small.csv")
