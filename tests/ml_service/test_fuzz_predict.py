"""Fuzz the Arrow decode + signature check + predict path with hypothesis.

Whatever bytes arrive, prediction either answers one row per input row or raises
InvalidArgument / ResourceExhausted; any other exception is a bug. Bounded here; for a long
run: `FUZZ_EXAMPLES=20000 pytest tests/ml_service/test_fuzz_predict.py`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_service.dataset import plan_training
from ml_service.errors import InvalidArgument, ResourceExhausted
from ml_service.kinds import get_kind
from ml_service.loaded_model import LoadedModel, output_schema
from ml_service.predictor import read_rows
from ml_service.trainer import train
from ml_service.training_contract import TrainingTask
from mlops_client.ipc import to_ipc
from tests.ml_service.helpers import read_csv

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MESSAGE_BYTES = 64 * 1024 * 1024
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
            "sex", "year"]  # fmt: skip


def trained(kind: str, tmp: Path, data_dir: Path) -> LoadedModel:
    table = read_csv(data_dir / "penguins.csv")
    pq.write_table(table, tmp / "data.parquet")
    params = get_kind(kind).resolve_hyperparameters({"iterations": 5} if kind == "catboost" else {})
    task = TrainingTask(
        kind=kind,
        hyperparameters=params,
        dataset_path=str(tmp / "data.parquet"),
        target_column="species",
        features=tuple(
            (name, use) for name, use, _ in plan_training(table.schema, "species", [], {}).features
        ),
        holdout_fraction=0.2,
        seed=0,
        artifact_path=str(tmp / f"model-{kind}"),
    )
    result = train(task, lambda progress: None)
    return LoadedModel(
        model_id="m-fuzz",
        version=1,
        kind=get_kind(kind),
        model=get_kind(kind).runtime.load(task.artifact_path),
        signature=result.signature,
        output_schema=output_schema(result.signature),
    )


@pytest.fixture(scope="module", params=["logistic_regression", "catboost"])
def model(request: pytest.FixtureRequest, tmp_path_factory: Any, data_dir_path: Path) -> Any:
    return trained(request.param, tmp_path_factory.mktemp("fuzz"), data_dir_path)


def predict(model: LoadedModel, data: bytes) -> None:
    try:
        table = read_rows(data, MESSAGE_BYTES)
        result = model.predict(table)
    except (InvalidArgument, ResourceExhausted) as exc:
        assert exc.message
        return
    assert result.num_rows == table.num_rows
    assert result.schema == model.output_schema


numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**40), 2**40)
texts = st.text(max_size=12)
ARRAYS = {
    "float64": (st.floats(allow_nan=True, allow_infinity=True), pa.float64()),
    "float32": (st.floats(width=32, allow_nan=True), pa.float32()),
    "int64": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
    "int8": (st.integers(-128, 127), pa.int8()),
    "uint64": (st.integers(0, 2**64 - 1), pa.uint64()),
    "bool": (st.booleans(), pa.bool_()),
    "string": (texts, pa.string()),
    "large_string": (texts, pa.large_string()),
    "string_view": (texts, pa.string_view()),
    "binary": (st.binary(max_size=8), pa.binary()),
    "list": (st.lists(st.integers(0, 9), max_size=3), pa.list_(pa.int64())),
    "date": (st.integers(0, 20000), pa.date32()),
    "null": (st.none(), pa.null()),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 20))
    names = draw(st.lists(st.sampled_from([*FEATURES, "extra", "species"]), max_size=10))
    columns = {}
    for name in names:
        values, arrow_type = ARRAYS[draw(st.sampled_from(sorted(ARRAYS)))]
        data = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        array = pa.array(data, type=arrow_type)
        if arrow_type == pa.string() and draw(st.booleans()):
            array = array.dictionary_encode()
        elif arrow_type in (pa.float64(), pa.string()) and draw(st.booleans()):
            array = pc.run_end_encode(array)
        columns[name] = array
    return pa.table(columns) if columns else pa.table({"empty": pa.array([], pa.int8())})


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes(model: LoadedModel, data: bytes) -> None:
    predict(model, data)


@FUZZ
@given(table=tables())
def test_random_tables(model: LoadedModel, table: pa.Table) -> None:
    predict(model, to_ipc(table))


@FUZZ
@given(
    table=tables(),
    cut=st.integers(0, 10_000),
    flips=st.lists(st.integers(0, 10_000), max_size=4),
    compression=st.sampled_from([None, "zstd", "lz4"]),
)
def test_damaged_streams(
    model: LoadedModel, table: pa.Table, cut: int, flips: list[int], compression: str | None
) -> None:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    data = bytearray(sink.getvalue().to_pybytes())
    for position in flips:
        if data:
            data[position % len(data)] ^= 0xFF
    predict(model, bytes(data[: max(1, cut % (len(data) + 1))]))


def test_well_formed_rows_predict(model: LoadedModel, data_dir_path: Path) -> None:
    rows = read_csv(data_dir_path / "penguins.csv").drop_columns(["species"])
    result = model.predict(read_rows(to_ipc(rows), MESSAGE_BYTES))
    assert result.num_rows == rows.num_rows
    total = sum(result.column(f"proba_{c}").to_numpy() for c in model.signature.classes)
    assert all(math.isclose(t, 1.0, abs_tol=1e-9) for t in total)
