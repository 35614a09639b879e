"""Tables unlike the friendly datasets, each case one that once failed a user (issue 10).

Through the real gRPC service: what trains, predicts with unique, finite outputs; what
cannot, is refused naming the field, before anything is queued where that is possible.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute
import pyarrow.csv as pacsv
import pytest
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import types_pb2 as pb

from ml_service.worker import plain_message
from mlops_client.ipc import from_ipc, to_ipc
from tests.conftest import ServiceThread, service_settings
from tests.ml_service.helpers import Client, violations

KINDS = ("catboost", "logistic_regression")
FAST = {"catboost": {"iterations": 20}, "logistic_regression": {}}
SUCCEEDED = pb.JOB_STATE_SUCCEEDED
#: A low cap on output values, so the limit is reached with small, quick tables.
MAX_VALUES = 20_000


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    settings = service_settings(
        tmp_path_factory.mktemp("any") / "store",
        max_message_bytes=1024 * 1024,
        max_predict_values=MAX_VALUES,
    )
    running = ServiceThread(settings).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def channel(service: ServiceThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(service.target) as ch:
        yield ch


@pytest.fixture(scope="module")
def client(channel: grpc.Channel) -> Client:
    return Client(channel)


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> ps_grpc.PredictionServiceStub:
    return ps_grpc.PredictionServiceStub(channel)


def trained(
    client: Client, table: pa.Table, kind: str, target: str, **spec: Any
) -> pb.ModelVersion:
    final = client.train(table, kind=kind, target_column=target, hyperparameters=FAST[kind], **spec)
    assert final.state == SUCCEEDED, final.error.message
    return final.result


def predict(stub: ps_grpc.PredictionServiceStub, model_id: str, rows: pa.Table) -> pa.Table:
    request = ps.PredictRequest(model_id=model_id, arrow_ipc=to_ipc(rows))
    return from_ipc(stub.Predict(request, timeout=60).arrow_ipc)


def stream(
    stub: ps_grpc.PredictionServiceStub, model_id: str, batches: list[pa.Table]
) -> list[ps.StreamPredictResponse]:
    requests = (
        ps.StreamPredictRequest(model_id=model_id, arrow_ipc=to_ipc(batch)) for batch in batches
    )
    return list(stub.StreamPredict(requests, timeout=60))


def refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def labelled(n: int, **columns: Any) -> pa.Table:
    rng = np.random.default_rng(7)
    x = rng.normal(size=n)
    return pa.table({"x": x, **columns, "y": np.where(x > 0, "up", "down")})


@pytest.mark.parametrize("kind", KINDS)
def test_an_all_numeric_table_trains_and_predicts(client: Client, stub: Any, kind: str) -> None:
    table = labelled(60, z=np.arange(60.0))
    version = trained(client, table, kind, "y")

    assert sorted(f.feature for f in version.feature_importance) == ["x", "z"]
    out = predict(stub, version.model_id, table.drop_columns(["y"]))
    assert out.column_names == ["label", "proba_down", "proba_up"]
    # y is the sign of x: a model that learned anything gets nearly all of them.
    agree = np.equal(out.column("label").to_numpy(False), table.column("y").to_numpy(False))
    assert agree.mean() > 0.9


@pytest.mark.parametrize("kind", KINDS)
def test_newer_arrow_layouts_train_as_the_same_values(client: Client, stub: Any, kind: str) -> None:
    # Polars and DuckDB hand text over as string_view; float16 comes from half-precision
    # pipelines; run-end encoding from writers of repeated values. Each was refused.
    plain = labelled(
        80,
        colour=pa.array(["red", "blue", None, "green"] * 20),
        shade=pa.array(["dark", "light"] * 40),
        size=pa.array(np.arange(80) % 9, pa.float32()),
        band=pa.array(["low"] * 40 + ["high"] * 40),
    )
    newer = plain.set_column(1, "colour", plain["colour"].cast(pa.string_view()))
    newer = newer.set_column(2, "shade", plain["shade"].dictionary_encode().cast(
        pa.dictionary(pa.int32(), pa.string_view())))  # fmt: skip
    newer = newer.set_column(3, "size", plain["size"].cast(pa.float16()))
    band = pa.compute.run_end_encode(plain["band"].combine_chunks())
    newer = newer.set_column(4, "band", band)
    newer = newer.set_column(5, "y", plain["y"].cast(pa.string_view()))

    version = trained(client, newer, kind, "y")

    types = {f.name: f.arrow_type for f in version.signature.features}
    shade = "dictionary<values=string, indices=int32, ordered=0>"  # as Parquet keeps it
    assert types == {"x": "double", "colour": "large_string", "shade": shade, "size": "float",
                     "band": "string"}  # fmt: skip
    assert list(version.signature.classes) == ["down", "up"]
    rows = plain.drop_columns(["y"])
    assert predict(stub, version.model_id, rows).equals(
        predict(stub, version.model_id, newer.drop_columns(["y"]).slice(0, 80))
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("holdout", [0.0, 0.2])
def test_a_csv_written_by_pandas_trains_and_predicts(
    client: Client, stub: Any, kind: str, holdout: float
) -> None:
    frame = pd.DataFrame(
        {"colour": ["red", "blue", "green", "red"] * 5, "size": range(20), "y": ["a", "b"] * 10}
    )
    # to_csv() writes the index as a first column with an empty header cell.
    table = pacsv.read_csv(io.BytesIO(frame.to_csv().encode()))
    assert table.column_names[0] == ""
    version = trained(client, table, kind, "y", holdout_fraction=holdout)

    assert [f.name for f in version.signature.features] == ["", "colour", "size"]
    out = predict(stub, version.model_id, table.drop_columns(["y"]))
    assert out.num_rows == 20
    assert np.allclose(out.column("proba_a").to_numpy() + out.column("proba_b").to_numpy(), 1)


@pytest.mark.parametrize("kind", KINDS)
def test_names_no_library_takes_are_kept_exactly(client: Client, stub: Any, kind: str) -> None:
    names = ["a\x00b", "  spaced  ", "ünï ☃", "x" * 300]
    rng = np.random.default_rng(3)
    columns: dict[str, Any] = {name: rng.normal(size=40) for name in names}
    columns["kind"] = pa.array(["p", "q"] * 20).dictionary_encode()
    table = pa.table({**columns, "y": ["u", "v", "w", "u"] * 10})
    version = trained(client, table, kind, "y", holdout_fraction=0)

    assert [f.name for f in version.signature.features] == [*names, "kind"]
    assert {f.feature for f in version.feature_importance} == {*names, "kind"}
    got = predict(stub, version.model_id, table.drop_columns(["y"]).select([*names[::-1], "kind"]))
    assert got.num_rows == 40


@pytest.mark.parametrize("kind", KINDS)
def test_classes_named_like_output_columns_do_not_collide(
    client: Client, stub: Any, kind: str
) -> None:
    classes = ["label", "proba_label", "", "proba_"]
    rng = np.random.default_rng(5)
    table = pa.table({"x": rng.normal(size=80), "y": classes * 20})
    version = trained(client, table, kind, "y")

    out = predict(stub, version.model_id, table.drop_columns(["y"]))
    names = out.column_names
    assert len(names) == len(set(names)) == 5
    assert names == ["label", *(f"proba_{c}" for c in sorted(classes))]
    assert set(out.column("label").to_pylist()) <= set(classes)


def test_huge_finite_inputs_are_refused_naming_the_column(client: Client, stub: Any) -> None:
    # b's spread is small, so scaling 1.79e308 overflows to infinity, and the class scores
    # then subtract infinity from infinity.
    b = np.arange(60.0) % 7 * 0.01
    table = pa.table({"a": np.arange(60.0), "b": b, "y": ["p", "q", "r"] * 20})
    version = trained(client, table, "logistic_regression", "y")
    rows = pa.table({"a": [1.0, 1.0], "b": [0.02, 1.79e308]})

    error = refusal(lambda: predict(stub, version.model_id, rows))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, text)] = violations(error).items()
    assert field == "columns.b" and "row 1" in text and "1.79e+308" in text


def test_huge_training_values_are_refused_for_logistic_regression_only(
    client: Client,
) -> None:
    table = labelled(40, big=np.full(40, 1e300))
    error = refusal(lambda: client.create_job(table, kind="logistic_regression", target_column="y"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "column 'big'" in violations(error)["feature_columns"]

    trained(client, table, "catboost", "y")


def many_classes(classes: int, per_class: int) -> pa.Table:
    rng = np.random.default_rng(11)
    labels = np.repeat(np.arange(classes), per_class)
    return pa.table({"x": labels + rng.normal(scale=0.1, size=len(labels)), "y": labels})


def test_output_over_the_value_cap_is_refused_up_front_and_streams_in_parts(
    client: Client, stub: Any
) -> None:
    table = many_classes(60, 5)
    version = trained(client, table, "logistic_regression", "y", allow_many_classes=True)
    rows = pa.table({"x": np.linspace(0, 60, 1000)})  # 1000 x 61 values, over MAX_VALUES

    error = refusal(lambda: predict(stub, version.model_id, rows))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error.details() or ""
    assert "1000 rows" in details and "60 classes" in details and "20,000" in details
    assert "StreamPredict" in details

    # 300 rows x 61 values fit the cap, but not a quarter of the 1 MiB message cap.
    answers = stream(stub, version.model_id, [rows.slice(0, 300), rows.slice(300, 300)])
    assert all(len(a.arrow_ipc) <= 512 * 1024 for a in answers)
    for index in (0, 1):
        parts = [a for a in answers if a.batch_index == index]
        assert [a.continued for a in parts][-1] is False
        assert sum(from_ipc(a.arrow_ipc).num_rows for a in parts) == 300


@pytest.mark.parametrize(
    ("target", "words"),
    [
        (np.arange(120) * 0.5, "fractional part"),
        (np.arange(120) % 60, "more than 50 classes"),
        (np.arange(120) % 30, "fewer than 5 rows per class"),
    ],
    ids=["fractional-floats", "over-50-classes", "few-rows-per-class"],
)
def test_a_target_that_looks_continuous_is_refused_unless_allowed(
    client: Client, target: Any, words: str
) -> None:
    table = pa.table({"x": np.arange(120.0), "y": target})
    error = refusal(lambda: client.create_job(table, kind="logistic_regression", target_column="y"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    text = violations(error)["target_column"]
    assert words in text and "allow_many_classes" in text
    trained(client, table, "logistic_regression", "y", allow_many_classes=True)


def test_whole_number_floats_are_ordinary_class_labels(client: Client, stub: Any) -> None:
    table = pa.table({"x": np.arange(40.0), "y": np.arange(40.0) % 2})
    version = trained(client, table, "catboost", "y")

    assert list(version.signature.classes) == ["0", "1"]
    out = predict(stub, version.model_id, table.drop_columns(["y"]))
    assert out.schema.field("label").type == pa.float64()


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("catboost", {"learning_rate": 1e-300}, "learning_rate"),
        ("catboost", {"l2_leaf_reg": 1e308}, "l2_leaf_reg"),
        ("catboost", {"random_strength": 1e300}, "random_strength"),
        ("logistic_regression", {"C": 1e-300}, "C"),
    ],
)
def test_hyperparameters_the_library_refuses_are_refused_before_queueing(
    client: Client, kind: str, params: dict[str, Any], field: str
) -> None:
    error = refusal(
        lambda: client.create_job(
            labelled(20), kind=kind, target_column="y", hyperparameters=params
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(error)) == [f"hyperparameters.{field}"]


def test_library_errors_reach_users_without_source_places() -> None:
    error = ValueError(
        "catboost/private/libs/options/boosting_options.cpp:79: Learning rate should be non-zero"
    )
    assert plain_message(error) == "Learning rate should be non-zero"
    assert plain_message(ValueError('first line\n  File "x.py", line 3')) == "first line"


@pytest.mark.parametrize("kind", KINDS)
def test_features_that_never_vary_are_refused_before_queueing(client: Client, kind: str) -> None:
    table = pa.table(
        {"colour": pa.array(["red", "red"]).dictionary_encode(), "y": pa.array(["a", "b"])}
    )
    error = refusal(lambda: client.create_job(table, kind=kind, target_column="y"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing to learn from" in violations(error)["feature_columns"]


@pytest.mark.parametrize("kind", KINDS)
def test_features_that_vary_only_in_the_holdout_are_refused_before_queueing(
    client: Client, kind: str
) -> None:
    # A rare flag: seed 1 sends its one set row to the holdout, which leaves 32 training
    # rows of one value (CatBoost failed the queued job: "All features are ... constant").
    table = pa.table({"flag": [0.0] * 39 + [1.0], "y": ["a", "b"] * 20})
    error = refusal(lambda: client.create_job(table, kind=kind, target_column="y", seed=1))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    said = violations(error)["holdout_fraction"]
    assert "holds one value in the 32 training rows" in said and "seed 1" in said
    # The split the core checks is the one the worker trains on: another seed keeps the row.
    model = trained(client, table, kind, "y", seed=0)
    assert model.train_rows == 32
    # Its rows again with seed 1, no data sent: split first by the worker, which says so.
    job = client.retrain(model_id=model.model_id, seed=1)
    final = client.watch(job.job_id)[-1]
    assert final.state == pb.JOB_STATE_FAILED
    assert final.error.message.startswith(
        "holdout_fraction: every feature column holds one value in the 32 training rows"
    ), final.error.message


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ([123456789.0, 123456790.0, 123456791.0], "'id' holds 123456789 to 123456791"),
        ([0.0, 1e-50, 2e-50], "'id' holds 0 to 2e-50"),
        ([1e39, 2e39, 3e39], "'id' holds 1e+39 to 3e+39"),
    ],
)
def test_numbers_catboost_reads_as_one_are_refused_before_queueing(
    client: Client, stub: Any, values: list[float], said: str
) -> None:
    # CatBoost reads 32-bit floats: these were a queued job failing with "All features are
    # either constant or ignored."; logistic regression reads 64-bit ones and tells them apart.
    table = pa.table({"id": values * 10, "y": ["a", "b"] * 15})
    error = refusal(lambda: client.create_job(table, kind="catboost", target_column="y"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = violations(error)["feature_columns"]
    assert "(as 32-bit floats)" in message and said in message
    model = trained(client, table, "logistic_regression", "y", holdout_fraction=0.0)
    assert predict(stub, model.model_id, table.select(["id"])).num_rows == 30


@pytest.mark.parametrize("kind", KINDS)
def test_a_column_of_zeros_and_negative_zeros_never_varies(client: Client, kind: str) -> None:
    table = pa.table({"x": [0.0, -0.0] * 10, "y": ["a", "b"] * 10})
    error = refusal(lambda: client.create_job(table, kind=kind, target_column="y"))

    assert "nothing to learn from" in violations(error)["feature_columns"]


@pytest.mark.parametrize("kind", KINDS)
def test_negative_zero_labels_are_the_class_zero(client: Client, stub: Any, kind: str) -> None:
    # np.round gives -0.0 for small negatives: labels 0/1 came out as three classes,
    # "-0", "0" and "1", and predictions said -0.0 for some rows.
    scores = np.tile([-0.3, 0.2, 0.8, 1.2], 10)
    table = pa.table({"x": scores, "y": np.round(scores)})
    model = trained(client, table, kind, "y")

    assert list(model.signature.classes) == ["0", "1"]
    answer = predict(stub, model.model_id, table.select(["x"]))
    assert answer.column_names == ["label", "proba_0", "proba_1"]
    assert not any(math.copysign(1, label) < 0 for label in answer["label"].to_pylist())


def amounts(n: int, seed: int = 13) -> npt.NDArray[np.float64]:
    """Amounts with cents, one in five negative, all different."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) * 137.31 + 1003.5) * np.where(np.arange(n) % 5, 1, -1)


def decorated_table(values: list[str]) -> pa.Table:
    """`labelled` with a text column 'price' of the values, its first one the example."""
    return labelled(len(values), price=pa.array(values))


def thousands_from_a_csv(n: int) -> list[str]:
    # "1,234" quoted in a CSV: pyarrow (and pandas) read the column as text.
    lines = "".join(f'"{abs(v):,.0f}"\n' for v in amounts(n))
    read = pacsv.read_csv(io.BytesIO(b"price\n" + lines.encode())).column("price")
    assert read.type == pa.string()
    return [str(value) for value in read.to_pylist()]


DECORATED = {
    "thousands-in-a-csv": (thousands_from_a_csv, "thousands separators", "remove the separators"),
    "thousands-spaces": (
        lambda n: [f"{abs(v):,.0f}".replace(",", "\u00a0") for v in amounts(n)],
        "thousands separators",
        "remove the separators",
    ),
    "percent": (
        lambda n: [f"{v / 100:.0f}%" for v in amounts(n)],
        "a percent sign",
        "remove the signs",
    ),
    "percent-spaced": (
        lambda n: [f"{v / 1000:.1f} %" for v in amounts(n)],
        "a percent sign",
        "remove the signs",
    ),
    "dollars": (
        lambda n: [f"${abs(v):.2f}" for v in amounts(n)],
        "a currency sign",
        "remove the signs",
    ),
    "euros-decimal-comma": (
        lambda n: [f"€{abs(v):.2f}".replace(".", ",") for v in amounts(n)],
        "a currency sign and decimal commas",
        "remove the signs and use decimal points",
    ),
    "currency-code": (
        lambda n: [f"{abs(v):.2f} USD" for v in amounts(n)],
        "a currency sign",
        "remove the signs",
    ),
    "kilograms": (
        lambda n: [f"{abs(v) / 10:.1f} kg" for v in amounts(n)],
        "a unit",
        "remove the units",
    ),
    "accounting-negatives": (
        lambda n: [f"({-v:.2f})" if v < 0 else f"{v:.2f}" for v in amounts(n)],
        "negatives in parentheses",
        "write negatives with a minus sign",
    ),
}


@pytest.mark.parametrize(("make", "written", "fix"), DECORATED.values(), ids=DECORATED.keys())
def test_numbers_written_with_decorations_are_refused_naming_the_column_and_a_value(
    client: Client, make: Any, written: str, fix: str
) -> None:
    # Read as text, each amount trained as a category of its own: a silently bad model.
    values = make(60)
    if written.startswith("negatives"):
        values = [v for v in values if v.startswith("(")] + [v for v in values if "(" not in v]
    table = decorated_table(values)
    error = refusal(lambda: client.create_job(table, kind="catboost", target_column="y"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    said = (
        f"column 'price' holds numbers written with {written} ('{values[0]}'): {fix} so it is "
        "read as numbers, or declare it categorical (feature_types) to train on each value as "
        "a category"
    )
    # The whole text in the message; a violation's is cut at 200 characters.
    assert error.details() == f"feature_columns: {said}"
    [(field, text)] = violations(error).items()
    assert field == "feature_columns" and said.startswith(text.removesuffix("…"))


@pytest.mark.parametrize("kind", KINDS)
def test_decorated_numbers_declared_categorical_train_and_retrain(
    client: Client, stub: Any, kind: str
) -> None:
    values = [f"${abs(v):,.2f}" for v in amounts(60)]
    table = decorated_table(values)
    categorical = {"price": pb.FEATURE_TYPE_CATEGORICAL}
    model = trained(client, table, kind, "y", feature_types=categorical)

    [price] = [f for f in model.signature.features if f.name == "price"]
    assert price.feature_type == pb.FEATURE_TYPE_CATEGORICAL and len(price.categories) == 60
    assert predict(stub, model.model_id, table.drop_columns(["y"])).num_rows == 60
    # A retrain reads the parent's types as given: with new data of the same kind, and without.
    for data in (decorated_table([f"${abs(v):,.2f}" for v in amounts(60, seed=14)]), None):
        job = client.retrain(data, model_id=model.model_id, hyperparameters=FAST[kind])
        final = client.watch(job.job_id)[-1]
        assert final.state == SUCCEEDED, final.error.message


@pytest.mark.parametrize("kind", KINDS)
def test_ordinary_categories_that_hold_digits_are_not_refused(client: Client, kind: str) -> None:
    n = 60
    table = labelled(
        n,
        seat=[f"{'ABC'[i % 3]}{i}" for i in range(n)],
        band=[f"{i % 6 * 10}-{i % 6 * 10 + 10}" for i in range(n)],
        place=[f"{i % 4 + 1}{('st', 'nd', 'rd', 'th')[i % 4]}" for i in range(n)],
        zip=[f"{i * 37 % 1000:05d}" for i in range(n)],  # text on purpose: zero-padded
        discount=["5%", "10%", "15%", "20%"] * (n // 4),  # a few codes, not amounts
        date=[f"{i % 28 + 1:02d}.03.2024" for i in range(n)],
        mostly=[f"${i}" if i < 5 else f"note {i}" for i in range(n)],
    )
    model = trained(client, table, kind, "y")

    kinds = {f.name: f.feature_type for f in model.signature.features}
    assert kinds == {"x": pb.FEATURE_TYPE_NUMERIC} | {
        name: pb.FEATURE_TYPE_CATEGORICAL
        for name in ("seat", "band", "place", "zip", "discount", "date", "mostly")
    }


@pytest.mark.parametrize("kind", KINDS)
def test_phone_numbers_and_ids_written_in_groups_train_as_categories(
    client: Client, kind: str
) -> None:
    # Each value has the same shape of digit groups, where amounts vary in magnitude.
    n = 60
    table = labelled(
        n,
        phone=[f"{600 + i * 7} {100 + i * 13} {100 + i * 11}" for i in range(n)],
        mobile=[f"+48 {500 + i} {300 + i * 9} {200 + i * 3}" for i in range(n)],
        national_id=[f"{10 + i}.{100 + i * 13}.{900 - i * 7}" for i in range(n)],
        address=[f"192.168.{100 + i}.{254 - i}" for i in range(n)],
    )
    model = trained(client, table, kind, "y")

    kinds = {f.name: f.feature_type for f in model.signature.features}
    assert kinds == {"x": pb.FEATURE_TYPE_NUMERIC} | {
        name: pb.FEATURE_TYPE_CATEGORICAL for name in ("phone", "mobile", "national_id", "address")
    }


@pytest.mark.parametrize("kind", KINDS)
def test_a_boolean_feature_takes_true_and_false_written_as_text(
    client: Client, stub: Any, kind: str
) -> None:
    # A CSV's true/false column trains as booleans; the same words as text (JSON rows
    # {"flag": "true"}, a CSV of rows whose column the reader took for text) were refused
    # with "column 'flag' must hold numbers ('true' is not a number)".
    flags = np.arange(60) % 3 == 0
    table = labelled(60, flag=flags)
    version = trained(client, table, kind, "y")
    assert {f.name: f.arrow_type for f in version.signature.features}["flag"] == "bool"
    rows = table.drop_columns(["y"]).slice(0, 6)
    words = ["true" if f else "FALSE" for f in flags[:6]]
    for text in (pa.array(words), pa.array(words).dictionary_encode()):
        as_text = rows.set_column(1, "flag", text)
        assert predict(stub, version.model_id, as_text).equals(
            predict(stub, version.model_id, rows)
        )

    no = rows.set_column(1, "flag", pa.array(["true", "false", "yes"] * 2))
    error = refusal(lambda: predict(stub, version.model_id, no))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(error) == {
        "columns.flag": "column 'flag' must hold true or false ('yes' is neither)"
    }


@pytest.mark.parametrize("kind", KINDS)
def test_a_csv_ending_each_line_with_a_comma_trains_on_its_named_columns(
    client: Client, stub: Any, kind: str
) -> None:
    # Excel on Windows: CRLF, and a separator after the last field of every line, so each
    # row ends in an unnamed empty column. It was refused as "column '' has no values".
    frame = pd.DataFrame({"colour": ["red", "blue", "green"] * 10, "size": range(30),
                          "y": ["a", "b", "a"] * 10})  # fmt: skip
    text = "".join(line + ",\r\n" for line in frame.to_csv(index=False).splitlines())
    table = pacsv.read_csv(io.BytesIO(text.encode()))
    assert table.column_names == ["colour", "size", "y", ""]
    version = trained(client, table, kind, "y")

    assert [f.name for f in version.signature.features] == ["colour", "size"]
    rows = table.drop_columns(["y"])
    assert predict(stub, version.model_id, rows).equals(
        predict(stub, version.model_id, rows.select(["colour", "size"]))
    )
    # Named, it is a feature like any other, and says it holds nothing.
    error = refusal(
        lambda: client.create_job(table, kind=kind, target_column="y", feature_columns=["size", ""])
    )
    assert "column '' has no values" in violations(error)["feature_columns"]


def test_columns_the_model_does_not_read_are_ignored_whatever_they_hold(
    client: Client, stub: Any
) -> None:
    # A DataFrame predicted as it is, with a list of tags, a JSON-ish struct or a pandas
    # Period beside the features, was refused for columns the model never reads.
    table = labelled(40, size=np.arange(40.0) % 7)
    version = trained(client, table, "catboost", "y")
    rows = table.drop_columns(["y"]).slice(0, 3)
    period = pa.field("when", pa.int64(), metadata={b"ARROW:extension:name": b"pandas.period"})
    extras = rows.append_column("tags", pa.array([[1], [2, 3], None]))
    extras = extras.append_column("meta", pa.array([{"a": [1]}] * 3))
    extras = extras.append_column(period, pa.array([2007, 2008, 2009]))

    assert predict(stub, version.model_id, extras).equals(predict(stub, version.model_id, rows))
    answers = stream(stub, version.model_id, [extras, rows])
    assert from_ipc(answers[0].arrow_ipc).equals(from_ipc(answers[1].arrow_ipc))
    # A feature of such a type is still refused by name.
    nested = rows.set_column(1, "size", pa.array([[1.0], [2.0], [3.0]]))
    error = refusal(lambda: predict(stub, version.model_id, nested))
    assert list(violations(error)) == ["columns.size"]


def test_a_retrain_whose_rows_hold_text_in_a_numeric_column_says_the_parent_set_it(
    client: Client,
) -> None:
    # Was "feature_types.z: column 'z' is set to numeric … make it categorical": the person
    # retraining set no type, and a retrain cannot change the parent's.
    parent = trained(client, labelled(60, z=np.arange(60.0)), "logistic_regression", "y")
    rows = labelled(60, z=[str(i) if i != 7 else "n/a-7" for i in range(60)])

    error = refusal(lambda: client.retrain(rows, model_id=parent.model_id))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(error) == {
        "dataset": "column 'z' held numbers when version 1 was trained, but the new rows hold"
        " text that is not a number ('n/a-7'); fix the values (a retrain keeps its parent's"
        " column types)"
    }
