"""Predict and StreamPredict over real gRPC, checked against the in-process models."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import catboost
import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import skops.io
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import types_pb2 as pb

from ml_service import model_input
from ml_service.kinds.base import MISSING_CATEGORY, to_frame
from ml_service.kinds.sklearn_pipeline import TRUSTED_TYPES
from mlops_client.ipc import from_ipc, to_ipc
from tests.conftest import ServiceThread, service_settings
from tests.ml_service.helpers import Client

KINDS = {"catboost": {"iterations": 40}, "logistic_regression": {}}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    data_dir = tmp_path_factory.mktemp("predict") / "store"
    running = ServiceThread(service_settings(data_dir, model_cache_size=4)).start()
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


@pytest.fixture(scope="module")
def adult(adult: pa.Table) -> pa.Table:
    """The first 6,000 adult rows: enough for the comparisons, quick to train on."""
    return adult.slice(0, 6000)


@pytest.fixture(scope="module")
def models(client: Client, adult: pa.Table, penguins: pa.Table) -> dict[tuple[str, str], Any]:
    """One trained version per (kind, dataset)."""
    out = {}
    for kind, params in KINDS.items():
        for name, table, target in (("adult", adult, "income"), ("penguins", penguins, "species")):
            final = client.train(table, kind=kind, target_column=target, hyperparameters=params)
            assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
            out[(kind, name)] = final.result
    return out


def reference_proba(service: ServiceThread, version: Any, rows: pa.Table) -> np.ndarray:
    """Probabilities from the library's own model, called in process on a DataFrame."""
    record = service.call(
        service.server.core.get_version(version.model_id, version.version)  # type: ignore[union-attr]
    )
    path = str(Path(service.settings.data_dir) / record.artifact_key)
    kinds = {f.name: f.kind for f in record.training.signature.features}
    frame = to_frame(rows.select(list(kinds)), kinds, MISSING_CATEGORY)
    # The libraries were fitted on columns named by position.
    frame.columns = model_input.internal_names(len(kinds))
    if record.kind == "catboost":
        model = catboost.CatBoostClassifier()
        model.load_model(path)
        return np.asarray(model.predict_proba(frame))
    pipeline = skops.io.load(path, trusted=TRUSTED_TYPES)
    return np.asarray(pipeline.predict_proba(frame))


def features(table: pa.Table, target: str) -> pa.Table:
    return table.drop_columns([target])


def probabilities(result: pa.Table, classes: list[str]) -> np.ndarray:
    return np.column_stack([result.column(f"proba_{c}").to_numpy() for c in classes])


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(("dataset", "target"), [("adult", "income"), ("penguins", "species")])
def test_unary_matches_in_process_model(
    service: ServiceThread,
    stub: ps_grpc.PredictionServiceStub,
    models: dict[tuple[str, str], Any],
    request: pytest.FixtureRequest,
    kind: str,
    dataset: str,
    target: str,
) -> None:
    version = models[(kind, dataset)]
    rows = features(request.getfixturevalue(dataset), target).slice(0, 500)
    # Columns in another order and an extra one: matched by name, extra ignored.
    rows = rows.select(list(reversed(rows.column_names))).append_column(
        "comment", pa.array(["x"] * rows.num_rows)
    )
    response = stub.Predict(
        ps.PredictRequest(model_id=version.model_id, arrow_ipc=to_ipc(rows)), timeout=60
    )
    assert response.version == version.version
    result = from_ipc(response.arrow_ipc)
    classes = list(version.signature.classes)
    assert result.column_names == ["label", *(f"proba_{c}" for c in classes)]
    assert result.num_rows == rows.num_rows
    expected = reference_proba(service, version, rows)
    got = probabilities(result, classes)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert result.column("label").to_pylist() == [classes[i] for i in expected.argmax(axis=1)]


@pytest.mark.parametrize("kind", list(KINDS))
def test_stream_matches_in_process_model_in_order(
    service: ServiceThread,
    stub: ps_grpc.PredictionServiceStub,
    models: dict[tuple[str, str], Any],
    adult: pa.Table,
    kind: str,
) -> None:
    version = models[(kind, "adult")]
    rows = features(adult, "income")
    batches = rows.to_batches(max_chunksize=700)

    def requests() -> Iterator[ps.StreamPredictRequest]:
        for i, batch in enumerate(batches):
            model_id = version.model_id if i == 0 else ""
            yield ps.StreamPredictRequest(model_id=model_id, arrow_ipc=to_ipc(batch))

    answers = list(stub.StreamPredict(requests(), timeout=120))
    assert [a.batch_index for a in answers] == list(range(len(batches)))
    result = pa.concat_tables(from_ipc(a.arrow_ipc) for a in answers)
    expected = reference_proba(service, version, rows)
    got = probabilities(result, list(version.signature.classes))
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_stream_answers_while_open(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], penguins: pa.Table
) -> None:
    version = models[("logistic_regression", "penguins")]
    rows = to_ipc(features(penguins, "species").slice(0, 10))
    outgoing: list[ps.StreamPredictRequest] = []
    ready = threading.Condition()

    def requests() -> Iterator[ps.StreamPredictRequest]:
        for i in range(3):
            with ready:
                ready.wait_for(lambda i=i: len(outgoing) > i, timeout=30)
                yield outgoing[i]

    def send(message: ps.StreamPredictRequest) -> None:
        with ready:
            outgoing.append(message)
            ready.notify_all()

    send(ps.StreamPredictRequest(model_id=version.model_id, arrow_ipc=rows))
    answers = stub.StreamPredict(requests(), timeout=60)
    # Each answer arrives before the next request is even written.
    for i in range(3):
        answer = next(answers)
        assert answer.batch_index == i
        if i < 2:
            send(ps.StreamPredictRequest(arrow_ipc=rows))


def test_eight_concurrent_streams_are_all_correct(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], adult: pa.Table
) -> None:
    rows = features(adult, "income").slice(0, 2000)
    expected = {}
    for kind in KINDS:
        version = models[(kind, "adult")]
        response = stub.Predict(
            ps.PredictRequest(model_id=version.model_id, arrow_ipc=to_ipc(rows)), timeout=60
        )
        expected[kind] = from_ipc(response.arrow_ipc)
    results: dict[int, pa.Table] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        kind = list(KINDS)[n % 2]
        version = models[(kind, "adult")]
        batches = rows.to_batches(max_chunksize=250)
        try:
            requests = (
                ps.StreamPredictRequest(model_id=version.model_id, arrow_ipc=to_ipc(b))
                for b in batches
            )
            answers = stub.StreamPredict(requests, timeout=120)
            results[n] = pa.concat_tables(from_ipc(a.arrow_ipc) for a in answers)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    for n, table in results.items():
        assert table.equals(expected[list(KINDS)[n % 2]])
    assert len(results) == 8


def test_slow_reader_gets_every_answer(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], adult: pa.Table
) -> None:
    version = models[("logistic_regression", "adult")]
    batch = to_ipc(features(adult, "income").slice(0, 3000))
    count = 40

    def requests() -> Iterator[ps.StreamPredictRequest]:
        for i in range(count):
            yield ps.StreamPredictRequest(
                model_id=version.model_id if i == 0 else "", arrow_ipc=batch
            )

    seen = []
    for answer in stub.StreamPredict(requests(), timeout=120):
        seen.append(answer.batch_index)
        time.sleep(0.05)
    assert seen == list(range(count))


def bad_request(stub: ps_grpc.PredictionServiceStub, model_id: str, rows: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(ps.PredictRequest(model_id=model_id, arrow_ipc=rows), timeout=30)
    return err.value


def test_missing_columns_are_each_named(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], penguins: pa.Table
) -> None:
    version = models[("catboost", "penguins")]
    rows = features(penguins, "species").drop_columns(["island", "bill_depth_mm"])
    error = bad_request(stub, version.model_id, to_ipc(rows))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "island" in error.details() and "bill_depth_mm" in error.details()


def test_widening_unseen_categories_and_nulls(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], penguins: pa.Table
) -> None:
    version = models[("logistic_regression", "penguins")]
    rows = features(penguins, "species").slice(0, 4)
    rows = rows.set_column(
        rows.column_names.index("island"), "island", pa.array(["Atlantis", None, "Dream", "Biscoe"])
    )
    rows = rows.set_column(
        rows.column_names.index("flipper_length_mm"),
        "flipper_length_mm",
        pc.cast(pc.fill_null(rows.column("flipper_length_mm"), 200), pa.int32()),
    )
    response = stub.Predict(ps.PredictRequest(model_id=version.model_id, arrow_ipc=to_ipc(rows)))
    result = from_ipc(response.arrow_ipc)
    sums = probabilities(result, list(version.signature.classes)).sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)


@pytest.mark.parametrize(
    ("column", "values", "words"),
    [
        ("bill_length_mm", pa.array(["long", "short"]), "bill_length_mm"),
        ("bill_length_mm", pa.array([[1.0], [2.0]]), "nested"),
        ("island", pa.array([{"a": 1}, {"a": 2}]), "nested"),
    ],
)
def test_unconvertible_and_nested_columns_are_refused(
    stub: ps_grpc.PredictionServiceStub,
    models: dict[tuple[str, str], Any],
    penguins: pa.Table,
    column: str,
    values: pa.Array,
    words: str,
) -> None:
    version = models[("catboost", "penguins")]
    rows = features(penguins, "species").slice(0, 2)
    rows = rows.set_column(rows.column_names.index(column), column, values)
    error = bad_request(stub, version.model_id, to_ipc(rows))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.details() and column in error.details()


def test_extension_type_is_refused(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], penguins: pa.Table
) -> None:
    version = models[("catboost", "penguins")]
    rows = features(penguins, "species").slice(0, 2)
    uuids = pa.ExtensionArray.from_storage(
        pa.uuid(), pa.array([b"0" * 16, b"1" * 16], pa.binary(16))
    )
    island = rows.column_names.index("island")
    error = bad_request(stub, version.model_id, to_ipc(rows.set_column(island, "island", uuids)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "extension" in error.details() and "island" in error.details()
    # A column the model does not read is ignored, whatever its type.
    request = ps.PredictRequest(
        model_id=version.model_id, arrow_ipc=to_ipc(rows.append_column("id", uuids))
    )
    assert from_ipc(stub.Predict(request, timeout=30).arrow_ipc).num_rows == 2


def test_a_schema_marked_only_in_its_metadata_is_refused_after_the_plain_one(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], penguins: pa.Table
) -> None:
    # The service remembers what it decided per input schema; Arrow's schema equality ignores
    # metadata, where an unregistered extension type is marked.
    version = models[("logistic_regression", "penguins")]
    plain = features(penguins, "species").slice(0, 2)
    request = ps.PredictRequest(model_id=version.model_id, arrow_ipc=to_ipc(plain))
    assert from_ipc(stub.Predict(request, timeout=30).arrow_ipc).num_rows == 2
    island = plain.schema.get_field_index("island")
    field = plain.schema.field(island).with_metadata({"ARROW:extension:name": "example.secret"})
    marked = pa.Table.from_arrays(plain.columns, schema=plain.schema.set(island, field))
    error = bad_request(stub, version.model_id, to_ipc(marked))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "example.secret" in error.details()


@pytest.mark.parametrize("data", [b"", b"garbage bytes", to_ipc(pa.table({"a": [1]}))[:-9]])
def test_invalid_arrow_is_refused(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], data: bytes
) -> None:
    version = models[("catboost", "penguins")]
    error = bad_request(stub, version.model_id, data)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "arrow" in error.details().lower()


def test_bad_stream_batch_names_index_and_column(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], penguins: pa.Table
) -> None:
    version = models[("logistic_regression", "penguins")]
    good = features(penguins, "species").slice(0, 5)
    bad = good.drop_columns(["island"])
    messages = [to_ipc(good), to_ipc(good), to_ipc(bad), to_ipc(good)]
    requests = (ps.StreamPredictRequest(model_id=version.model_id, arrow_ipc=m) for m in messages)
    received = []
    with pytest.raises(grpc.RpcError) as err:  # noqa: PT012 - reads until the stream fails
        for answer in stub.StreamPredict(requests, timeout=30):
            received.append(answer.batch_index)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batches[2]" in err.value.details() and "island" in err.value.details()
    assert received == [0, 1]
    # The server keeps serving.
    ok = stub.Predict(ps.PredictRequest(model_id=version.model_id, arrow_ipc=to_ipc(good)))
    assert from_ipc(ok.arrow_ipc).num_rows == 5


def test_unknown_model_and_version(
    stub: ps_grpc.PredictionServiceStub, models: dict[tuple[str, str], Any], penguins: pa.Table
) -> None:
    rows = to_ipc(features(penguins, "species").slice(0, 1))
    error = bad_request(stub, "m-doesnotexist", rows)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "m-doesnotexist" in error.details()
    version = models[("catboost", "penguins")]
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(ps.PredictRequest(model_id=version.model_id, version=99, arrow_ipc=rows))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "99" in err.value.details()


def test_cache_loads_once_and_never_serves_stale_or_deleted(
    service: ServiceThread,
    client: Client,
    stub: ps_grpc.PredictionServiceStub,
    penguins: pa.Table,
) -> None:
    cache = service.server.core.predictions.cache  # type: ignore[union-attr]
    first = client.train(
        penguins, kind="catboost", target_column="species", hyperparameters={"iterations": 20}
    )
    rows = to_ipc(features(penguins, "species").slice(0, 3))
    loads = cache.loads
    responses: list[ps.PredictResponse] = []

    def call() -> None:
        responses.append(stub.Predict(ps.PredictRequest(model_id=first.model_id, arrow_ipc=rows)))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(responses) == 8 and {r.version for r in responses} == {1}
    assert cache.loads == loads + 1

    second = client.watch(
        client.retrain(model_id=first.model_id, hyperparameters={"iterations": 5}).job_id
    )[-1]
    assert second.result.version == 2
    latest = stub.Predict(ps.PredictRequest(model_id=first.model_id, arrow_ipc=rows))
    assert latest.version == 2
    assert from_ipc(latest.arrow_ipc) != from_ipc(responses[0].arrow_ipc)

    client.models.DeleteModelVersion(
        ms.DeleteModelVersionRequest(model_id=first.model_id, version=2)
    )
    fallback = stub.Predict(ps.PredictRequest(model_id=first.model_id, arrow_ipc=rows))
    assert fallback.version == 1
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(ps.PredictRequest(model_id=first.model_id, version=2, arrow_ipc=rows))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    client.models.DeleteModel(ms.DeleteModelRequest(model_id=first.model_id))
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(ps.PredictRequest(model_id=first.model_id, arrow_ipc=rows))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
