"""The gRPC half of the bad-input catalogue (docs/bad-inputs.md).

Every bad input gets the right status and a message naming the problem; the server keeps
serving and the model trained at the start is unchanged at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pytest
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from ml_service.predictor import read_rows
from mlops_client.ipc import from_ipc, table_chunks, to_ipc
from tests.conftest import ServiceThread, service_settings
from tests.ml_service.helpers import Client, violations

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    data_dir = tmp_path_factory.mktemp("bad") / "store"
    settings = service_settings(
        data_dir, max_message_bytes=2 * 1024 * 1024, max_columns=500, max_predict_rows=5000
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


@pytest.fixture(scope="module")
def rows(penguins: pa.Table) -> pa.Table:
    return penguins.drop_columns(["species"]).slice(0, 5)


@pytest.fixture(scope="module")
def stored(client: Client, penguins: pa.Table) -> Iterator[pb.ModelVersion]:
    """A model trained before the bad inputs; it must be unchanged after all of them."""
    final = client.train(penguins, kind="logistic_regression", target_column="species")
    yield final.result
    after = client.models.GetModelVersion(
        ms.GetModelVersionRequest(model_id=final.model_id, version=1)
    ).model_version
    assert after == final.result


def code_of(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.models.GetModel(ms.GetModelRequest(model_id="../../etc/passwd")), "model_id"),
        (lambda c: c.models.GetModel(ms.GetModelRequest(model_id="m" * 10_000)), "model_id"),
        (lambda c: c.models.GetModel(ms.GetModelRequest(model_id="")), "model_id"),
        (
            lambda c: c.models.DeleteModel(ms.DeleteModelRequest(model_id="a/../../b")),
            "model_id",
        ),
        (
            lambda c: c.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id="..\\x")),
            "job_id",
        ),
        (
            lambda c: c.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id="j" * 5000)),
            "job_id",
        ),
        (
            lambda c: c.models.ListModelVersions(ms.ListModelVersionsRequest(model_id="x y")),
            "model_id",
        ),
    ],
    ids=[
        "traversal",
        "10k-id",
        "empty-id",
        "delete-traversal",
        "job-traversal",
        "long-job",
        "space",
    ],
)
def test_malformed_ids(client: Client, stored: pb.ModelVersion, call: Any, field: str) -> None:
    error = code_of(lambda: call(client))
    assert error.code() == INVALID
    assert field in violations(error)
    assert len(error.details()) < 300


def test_unknown_ids_are_not_found(client: Client, stored: pb.ModelVersion) -> None:
    calls = [
        lambda: client.models.GetModel(ms.GetModelRequest(model_id="m-000000000000")),
        lambda: client.models.GetModelVersion(
            ms.GetModelVersionRequest(model_id=stored.model_id, version=42)
        ),
        lambda: client.models.DeleteModelVersion(
            ms.DeleteModelVersionRequest(model_id=stored.model_id, version=42)
        ),
        lambda: client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id="j-1")),
        lambda: client.watch("j-000000000001"),
        lambda: client.retrain(model_id="m-000000000000"),
    ]
    for call in calls:
        assert code_of(call).code() == grpc.StatusCode.NOT_FOUND


def test_bad_page_token(client: Client, stored: pb.ModelVersion) -> None:
    error = code_of(lambda: client.models.ListModels(ms.ListModelsRequest(page_token="zzz")))
    assert error.code() == INVALID and "page_token" in violations(error)


def test_ten_thousand_columns(client: Client, penguins: pa.Table, stub: Any, stored: Any) -> None:
    base = penguins.slice(0, 50)
    zeros = pa.array(np.zeros(50))
    columns = {name: base.column(name) for name in base.column_names}
    wide = pa.table(columns | {f"extra_{i}": zeros for i in range(10_000)})
    error = code_of(lambda: client.create_job(wide, kind="catboost", target_column="species"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "10008 columns" in error.details() and "500" in error.details()
    # In prediction, extra columns are ignored, as many as fit in a message.
    answer = stub.Predict(
        ps.PredictRequest(
            model_id=stored.model_id,
            arrow_ipc=to_ipc(wide.drop_columns(["species"]).slice(0, 5).select(range(3000))),
        ),
        timeout=60,
    )
    assert from_ipc(answer.arrow_ipc).num_rows == 5


def test_a_wide_request_is_read_with_only_the_models_columns(
    stub: Any, stored: pb.ModelVersion, penguins: pa.Table
) -> None:
    # 25,000 all-null columns the model does not use, before and among its own, one name
    # twice: a 1.5 MB request, read with only the model's columns, answered as a plain one.
    rows = penguins.drop(["species"]).slice(0, 3)
    extra = [pa.field(f"x{i}", pa.null()) for i in range(25_000)] + [pa.field("x7", pa.null())]
    wide = pa.Table.from_arrays(
        [pa.nulls(3)] * len(extra) + rows.columns,
        schema=pa.schema(extra + list(rows.schema)),
    )
    data = to_ipc(wide)
    assert len(data) > 1 << 20

    def predicted(data: bytes) -> pa.Table:
        request = ps.PredictRequest(model_id=stored.model_id, arrow_ipc=data)
        return from_ipc(stub.Predict(request, timeout=60).arrow_ipc)

    assert predicted(data).equals(predicted(to_ipc(rows)))
    # Arrow built none of the others (each ~500 bytes besides its data: ~12x the request).
    read = read_rows(data, 1 << 30, keep=frozenset(rows.column_names))
    assert read.column_names == rows.column_names
    # A column the model needs is still missed by name.
    error = code_of(lambda: predicted(to_ipc(wide.drop_columns(["island"]))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "island" in (error.details() or "")


def test_duplicate_column_names(client: Client, penguins: pa.Table, stored: Any) -> None:
    table = pa.Table.from_arrays(
        [penguins.column("species"), penguins.column("island"), penguins.column("year")],
        names=["species", "island", "island"],
    )
    error = code_of(lambda: client.create_job(table, kind="catboost", target_column="species"))
    assert error.code() == INVALID and "columns.island" in violations(error)


def test_message_over_the_cap(stub: Any, stored: pb.ModelVersion, rows: pa.Table) -> None:
    big = to_ipc(pa.table({"blob": [b"x" * (3 * 1024 * 1024)]}))
    error = code_of(
        lambda: stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=big))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_too_many_rows_in_one_call(stub: Any, stored: Any, penguins: pa.Table) -> None:
    many = pa.concat_tables([penguins.drop_columns(["species"])] * 20)
    error = code_of(
        lambda: stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=to_ipc(many)))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "5000" in error.details()


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [("bill_length_mm", float("inf"), "infinite"), ("bill_length_mm", float("-inf"), "infinite")],
)
def test_infinite_features(
    client: Client,
    stub: Any,
    stored: Any,
    penguins: pa.Table,
    column: str,
    value: float,
    words: str,
) -> None:
    index = penguins.column_names.index(column)
    values = penguins.column(column).to_pylist()
    values[3] = value
    table = penguins.set_column(index, column, pa.array(values))
    error = code_of(lambda: client.create_job(table, kind="catboost", target_column="species"))
    assert error.code() == INVALID and column in error.details() and words in error.details()
    rows = table.drop_columns(["species"]).slice(0, 5)
    error = code_of(
        lambda: stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=to_ipc(rows)))
    )
    assert error.code() == INVALID and column in error.details()


@pytest.mark.parametrize(
    ("column", "array", "words"),
    [
        ("nested", pa.array([[1, 2]] * 344), "nested"),
        ("when", pa.array([0] * 344, pa.timestamp("s")), "when"),
    ],
)
def test_unsupported_training_types(
    client: Client, penguins: pa.Table, column: str, array: pa.Array, words: str
) -> None:
    table = penguins.append_column(column, array)
    error = code_of(lambda: client.create_job(table, kind="catboost", target_column="species"))
    assert error.code() == INVALID and words in error.details()


def test_spec_twice_and_unset_feature_type(client: Client, penguins: pa.Table) -> None:
    spec = pb.TrainingJobSpec(kind="catboost", target_column="species")
    twice = [ts.CreateTrainingJobRequest(spec=spec), ts.CreateTrainingJobRequest(spec=spec)]
    error = code_of(lambda: client.training.CreateTrainingJob(iter(twice), timeout=30))
    assert error.code() == INVALID and "spec" in violations(error)
    error = code_of(
        lambda: client.create_job(
            penguins, kind="catboost", target_column="species", feature_types={"island": 0}
        )
    )
    assert error.code() == INVALID and "feature_types.island" in violations(error)


def test_long_name_and_bad_holdout(client: Client, penguins: pa.Table) -> None:
    error = code_of(
        lambda: client.create_job(
            penguins,
            kind="catboost",
            target_column="species",
            name="n" * 201,
            holdout_fraction=0.95,
        )
    )
    assert set(violations(error)) == {"name", "holdout_fraction"}


def test_retrain_with_data_missing_a_feature(
    client: Client, penguins: pa.Table, stored: pb.ModelVersion
) -> None:
    error = code_of(
        lambda: client.retrain(penguins.drop_columns(["island"]), model_id=stored.model_id)
    )
    assert error.code() == INVALID and "island" in error.details()
    error = code_of(
        lambda: client.retrain(model_id=stored.model_id, hyperparameters={"solver": "adam"})
    )
    assert error.code() == INVALID and "hyperparameters.solver" in violations(error)


def test_delete_while_training_and_cancel_twice(client: Client, penguins: pa.Table) -> None:
    first = client.train(penguins, kind="catboost", target_column="species",
                         hyperparameters={"iterations": 10})  # fmt: skip
    job = client.retrain(
        model_id=first.model_id, hyperparameters={"iterations": 10000, "learning_rate": 0.001}
    )
    error = code_of(
        lambda: client.models.DeleteModel(ms.DeleteModelRequest(model_id=first.model_id))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and job.job_id in error.details()
    client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job.job_id))
    error = code_of(
        lambda: client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=job.job_id))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        client.models.DeleteModel(ms.DeleteModelRequest(model_id=first.model_id)).deleted_versions
        == 1
    )


def test_predicting_while_the_model_is_deleted(
    client: Client, stub: Any, penguins: pa.Table, rows: pa.Table
) -> None:
    doomed = client.train(penguins, kind="logistic_regression", target_column="species")
    request = ps.PredictRequest(model_id=doomed.model_id, arrow_ipc=to_ipc(rows))
    codes: list[grpc.StatusCode] = []

    started = threading.Event()

    def hammer() -> None:
        while grpc.StatusCode.NOT_FOUND not in codes and len(codes) < 5000:
            try:
                stub.Predict(request, timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
            started.set()

    thread = threading.Thread(target=hammer)
    thread.start()
    assert started.wait(30)
    client.models.DeleteModel(ms.DeleteModelRequest(model_id=doomed.model_id))
    thread.join(60)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND}
    assert codes[-1] == grpc.StatusCode.NOT_FOUND


def test_client_disconnects_mid_upload(
    service: ServiceThread, client: Client, penguins: pa.Table, stored: pb.ModelVersion
) -> None:
    before = client.training.ListTrainingJobs(ts.ListTrainingJobsRequest()).jobs
    big = pa.concat_tables([penguins] * 200)

    def messages() -> Iterator[ts.CreateTrainingJobRequest]:
        spec = pb.TrainingJobSpec(kind="catboost", target_column="species")
        yield ts.CreateTrainingJobRequest(spec=spec)
        for i, piece in enumerate(table_chunks(big, 16 * 1024)):
            if i == 5:
                raise RuntimeError("client gives up")
            yield ts.CreateTrainingJobRequest(arrow_chunk=piece)

    with pytest.raises(grpc.RpcError):
        client.training.CreateTrainingJob(messages(), timeout=30)
    after = client.training.ListTrainingJobs(ts.ListTrainingJobsRequest()).jobs
    assert len(after) == len(before)
    tmp = Path(service.settings.data_dir) / "tmp"
    assert not [p for p in tmp.iterdir() if p.suffix == ".arrows"]


def test_client_disconnects_mid_stream(
    client: Client, stub: Any, stored: pb.ModelVersion, rows: pa.Table
) -> None:
    def requests() -> Iterator[ps.StreamPredictRequest]:
        for _ in range(1000):
            yield ps.StreamPredictRequest(model_id=stored.model_id, arrow_ipc=to_ipc(rows))

    answers = stub.StreamPredict(requests(), timeout=60)
    assert next(answers).batch_index == 0
    answers.cancel()
    answer = stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=to_ipc(rows)))
    assert from_ipc(answer.arrow_ipc).num_rows == rows.num_rows


def test_column_names_that_are_not_utf8(client: Client, stub: Any, stored: Any) -> None:
    data = to_ipc(pa.table({"zzzz": [1.0, 2.0], "species": ["a", "b"]}))
    broken = data.replace(b"zzzz", b"\xff\xfe\xfd\xfc")
    error = code_of(
        lambda: stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=broken))
    )
    assert error.code() == INVALID and "UTF-8" in error.details()
    upload = [
        ts.CreateTrainingJobRequest(
            spec=pb.TrainingJobSpec(kind="catboost", target_column="species")
        ),
        ts.CreateTrainingJobRequest(arrow_chunk=broken),
    ]
    error = code_of(lambda: client.training.CreateTrainingJob(iter(upload), timeout=30))
    assert error.code() == INVALID and "UTF-8" in error.details()


def test_full_queue_says_when_to_retry(start_service: Any, penguins: pa.Table) -> None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    service = start_service(max_concurrent_trainings=1, max_queued_jobs=0)
    with grpc.insecure_channel(service.target) as channel:
        busy = Client(channel)
        slow = {"iterations": 10000, "learning_rate": 0.001}
        running = busy.create_job(penguins, kind="catboost", target_column="species",
                                  hyperparameters=slow)  # fmt: skip
        for update in busy.training.WatchTrainingJob(
            ts.WatchTrainingJobRequest(job_id=running.job_id), timeout=60
        ):
            if update.job.state == pb.JOB_STATE_RUNNING:
                break
        error = code_of(lambda: busy.create_job(penguins, kind="catboost", target_column="species"))
        busy.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=running.job_id))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    retry = error_details_pb2.RetryInfo()
    assert status is not None and any(d.Unpack(retry) for d in status.details)
    assert retry.retry_delay.seconds > 0


def test_many_problems_fit_in_the_trailers(client: Client, penguins: pa.Table) -> None:
    params = {f"unknown_{i}_{'x' * 300}": i for i in range(60)}
    error = code_of(
        lambda: client.create_job(
            penguins, kind="catboost", target_column="species", hyperparameters=params
        )
    )
    assert error.code() == INVALID
    found = violations(error)
    assert 0 < len(found) <= 8
    assert len(error.details()) <= 600


def test_nan_hyperparameter_and_binary_feature(
    client: Client, stub: Any, stored: pb.ModelVersion, penguins: pa.Table, rows: pa.Table
) -> None:
    error = code_of(
        lambda: client.create_job(
            penguins,
            kind="catboost",
            target_column="species",
            hyperparameters={"learning_rate": float("nan")},
        )
    )
    assert error.code() == INVALID and "hyperparameters" in violations(error)
    island = rows.column_names.index("island")
    binary = rows.set_column(island, "island", pa.array([b"\xff\xfe"] * rows.num_rows))
    error = code_of(
        lambda: stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=to_ipc(binary)))
    )
    assert error.code() == INVALID and "island" in error.details()


def zstd_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def padded(table: pa.Table, rows: int) -> pa.Table:
    """The table's rows repeated to `rows`, with a text column of 1 kB a row."""
    repeated = pa.concat_tables([table] * -(-rows // table.num_rows)).slice(0, rows)
    return repeated.append_column("note", pa.array(["x" * 1000] * rows))


def test_compressed_buffers_are_measured_before_they_are_decompressed(
    start_service: Any, penguins: pa.Table
) -> None:
    service = start_service(max_message_bytes=1024 * 1024, max_upload_bytes=1024 * 1024)
    # Kilobytes that declare 3 MB: within the row limits, over the 1 MiB a message or an
    # upload may hold.
    upload = zstd_ipc(padded(penguins, 3000))
    bomb = zstd_ipc(padded(penguins.drop_columns(["species"]), 3000))
    assert len(upload) < 64 * 1024 and len(bomb) < 64 * 1024
    spec = pb.TrainingJobSpec(kind="catboost", target_column="species")
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        stub = ps_grpc.PredictionServiceStub(channel)
        pieces = [ts.CreateTrainingJobRequest(spec=spec), ts.CreateTrainingJobRequest(
            arrow_chunk=upload)]  # fmt: skip
        training = code_of(lambda: client.training.CreateTrainingJob(iter(pieces), timeout=30))
        model = client.train(penguins, kind="logistic_regression", target_column="species")
        request = ps.PredictRequest(model_id=model.model_id, arrow_ipc=bomb)
        streamed = ps.StreamPredictRequest(model_id=model.model_id, arrow_ipc=bomb)
        refusals = [
            code_of(lambda: stub.Predict(request)),
            code_of(lambda: list(stub.StreamPredict(iter([streamed]), timeout=30))),
        ]
        # Compressed rows within the limit decompress and predict.
        small = zstd_ipc(penguins.drop_columns(["species"]).slice(0, 5))
        answer = stub.Predict(ps.PredictRequest(model_id=model.model_id, arrow_ipc=small))
        assert from_ipc(answer.arrow_ipc).num_rows == 5
    assert training.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "decompress to more than 1,048,576 bytes" in training.details()
    assert "MLOPS_MAX_UPLOAD_BYTES" in training.details()
    for refusal in refusals:
        assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "decompress to more than 1,048,576 bytes" in refusal.details()
        assert "MLOPS_MAX_MESSAGE_BYTES" in refusal.details()


def views_of_one_value(value: str, rows: int) -> pa.Array:
    """A string_view column whose rows all point at the same bytes, sent once."""
    if len(value) <= 12:  # short values live in the views themselves
        return pa.array([value] * rows, pa.string_view())
    views = np.zeros((rows, 4), np.int32)
    views[:, 0] = len(value)
    views[:, 1] = np.frombuffer(value[:4].encode(), np.int32)[0]
    buffers = [None, pa.py_buffer(views.tobytes()), pa.py_buffer(value.encode())]
    return pa.Array.from_buffers(pa.string_view(), rows, buffers)


def expanding_columns(rows: int, value: str) -> dict[str, tuple[str, pa.Array]]:
    """Columns of `rows` rows that each hold `value` in every row, sent in a few kB."""
    one_code = pa.array(np.zeros(rows, np.int32))
    return {
        "string_view": ("island", views_of_one_value(value, rows)),
        "dictionary-twice": ("island", pa.DictionaryArray.from_arrays(
            one_code, pa.array([value, value]))),
        "dictionary-as-numbers": ("body_mass_g", pa.DictionaryArray.from_arrays(
            one_code, pa.array([value]))),
        "run-end-encoded": ("island", pa.RunEndEncodedArray.from_arrays(
            pa.array([rows], pa.int32()), pa.array([value]))),
    }  # fmt: skip


@pytest.mark.parametrize("layout", sorted(expanding_columns(1, "x")))
def test_columns_that_decode_to_more_than_a_message_are_refused(
    stub: Any, stored: pb.ModelVersion, rows: pa.Table, layout: str
) -> None:
    # 2000 rows of one 2 kB value: 4 MB decoded from kilobytes, within the 5000-row limit,
    # over the 2 MiB a message may hold.
    name, column = expanding_columns(2000, "x" * 2048)[layout]
    many = pa.concat_tables([rows] * 400).combine_chunks()
    table = many.set_column(many.column_names.index(name), name, column)
    data = to_ipc(table)
    assert len(data) < 512 * 1024
    error = code_of(
        lambda: stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=data))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"column '{name}'" in error.details()
    assert "decodes to more than 2,097,152 bytes" in error.details()
    # The same layouts of a few rows predict as the plain columns would.
    name, column = expanding_columns(5, "Dream")[layout]
    if name == "island":
        few = rows.set_column(rows.column_names.index(name), name, column)
        answer = stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=to_ipc(few)))
        assert from_ipc(answer.arrow_ipc).num_rows == 5


def test_an_upload_that_decodes_to_more_than_the_upload_limit_is_refused(
    tmp_path: Path,
) -> None:
    from ml_service.errors import ResourceExhausted
    from ml_service.ingest import read_ipc_file

    # A million rows of one number in a run: 8 MB decoded from a few hundred bytes.
    ends = pa.array([1_000_000], pa.int32())
    column = pa.RunEndEncodedArray.from_arrays(ends, pa.array([1.5]))
    path = tmp_path / "upload.arrows"
    path.write_bytes(to_ipc(pa.table({"x": column, "y": column})))
    with pytest.raises(ResourceExhausted) as refused:
        read_ipc_file(str(path), max_rows=50_000_000, max_bytes=1024 * 1024, max_columns=2000)
    assert "column 'x' is a run-end encoded column" in str(refused.value)
    assert "MLOPS_MAX_UPLOAD_BYTES" in str(refused.value)


def test_dictionary_deltas_that_grow_past_a_message_are_refused(
    stub: Any, stored: pb.ModelVersion, rows: pa.Table
) -> None:
    # Each delta adds one 100-byte island and each one-row batch holds the dictionary so far:
    # 400 batches send ~200 kB and hold 400 * 400 / 2 islands, 8 MB, over the 2 MiB limit.
    row = rows.slice(0, 1).combine_chunks()
    island = row.column_names.index("island")
    schema = row.schema.set(island, pa.field("island", pa.dictionary(pa.int32(), pa.string())))
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=True)
    islands: list[str] = []
    with pa.ipc.new_stream(sink, schema, options=options) as writer:
        for index in range(400):
            islands.append(f"{index:0100d}")
            codes = pa.array([index], pa.int32())
            column = pa.DictionaryArray.from_arrays(codes, pa.array(islands))
            writer.write_batch(row.set_column(island, "island", column).to_batches()[0])
    data = bytes(sink.getvalue())
    assert len(data) < 512 * 1024
    error = code_of(
        lambda: stub.Predict(ps.PredictRequest(model_id=stored.model_id, arrow_ipc=data))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "dictionary deltas make dictionaries of more than 2,097,152 bytes" in error.details()


def test_plans_for_wide_schemas_are_not_kept_past_their_budget(
    tmp_path: Path, data_dir_path: Path, penguins: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_service import loaded_model
    from tests.ml_service.test_fuzz_predict import trained

    # Each distinct schema's plan was kept under its serialised schema, up to 64 of them:
    # a client cycling through 64 schemas of a message's worth of columns left gigabytes
    # held. A 64 kB budget here stands for the real 16 MiB.
    monkeypatch.setattr(loaded_model, "_PLAN_KEY_BYTES", 64 * 1024, raising=False)
    model = trained("logistic_regression", tmp_path, data_dir_path)
    rows = penguins.drop_columns(["species"]).slice(0, 2)
    for name in ("a", "b", "c"):
        extra = {f"{name}_{i}": pa.nulls(2) for i in range(1000)}
        wide = pa.table({**{c: rows.column(c) for c in rows.column_names}, **extra})
        assert model.predict(wide).num_rows == 2
        assert len(wide.schema.serialize()) > 32 * 1024
    kept = model._plans
    assert sum(map(len, kept)) <= 64 * 1024
    assert model.predict(rows).num_rows == 2
    assert rows.schema.serialize().to_pybytes() in kept


def test_an_upload_wider_than_the_column_limit_is_refused_before_arrow_reads_it(
    tmp_path: Path,
) -> None:
    from ml_service.errors import ResourceExhausted
    from ml_service.ingest import read_ipc_file

    # Arrow builds every field of a schema as it opens a stream, ~1 kB each: a 58 MB
    # upload of 500,000 columns took 550 MB before the column limit was looked at.
    path = tmp_path / "upload.arrows"
    path.write_bytes(to_ipc(pa.table({f"c{i}": pa.nulls(1, pa.int8()) for i in range(3000)})))
    with pytest.raises(ResourceExhausted) as refused:
        read_ipc_file(str(path), max_rows=1000, max_bytes=1 << 30, max_columns=500)
    assert str(refused.value) == "the training data has 3000 columns; the limit is 500"
