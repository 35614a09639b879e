"""The Open Inference Protocol over gRPC: tritonclient, unmodified, against a real service."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import inference
import numpy as np
import pyarrow as pa
import pytest
import tritonclient.grpc as triton
from inference import raw
from tritonclient.grpc import service_pb2 as triton_pb
from tritonclient.grpc import service_pb2_grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from tests.conftest import ServiceThread, service_settings
from tests.ml_service.helpers import violations
from tests.ml_service.v2_helpers import (
    Trained,
    column_values,
    predict_v1,
    probabilities,
    train,
)
from tests.test_contract import ROOT, buf


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    running = ServiceThread(service_settings(tmp_path_factory.mktemp("v2") / "store")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def channel(service: ServiceThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(service.target) as ch:
        yield ch


@pytest.fixture(scope="module")
def client(service: ServiceThread) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(service.target) as tc:
        yield tc


@pytest.fixture(scope="module")
def penguins_model(channel: grpc.Channel, penguins: pa.Table) -> Trained:
    return train(channel, penguins, "species", "penguins-v2")


@pytest.fixture(scope="module")
def adult_model(channel: grpc.Channel, adult: pa.Table) -> Trained:
    return train(channel, adult.slice(0, 3000), "income", "adult-v2")


@pytest.fixture(params=["penguins", "adult"])
def model(request: pytest.FixtureRequest) -> Trained:
    """Each kind of problem: three classes (penguins) and two (adult)."""
    trained: Trained = request.getfixturevalue(f"{request.param}_model")
    return trained


def numeric_type(rows: pa.Table, name: str) -> str:
    """INT64 for whole integer columns, FP64 (NaN for gaps) for the rest, as numpy holds them."""
    integer = pa.types.is_integer(rows.schema.field(name).type) and rows[name].null_count == 0
    return "INT64" if integer else "FP64"


def triton_inputs(model: Trained, rows: pa.Table) -> list[triton.InferInput]:
    inputs = []
    for name in rows.column_names:
        datatype = "BYTES" if name in model.categorical else numeric_type(rows, name)
        tensor = triton.InferInput(name, [rows.num_rows], datatype)
        tensor.set_data_from_numpy(column_values(rows, name, datatype))
        inputs.append(tensor)
    return inputs


def inference_pb_param(**value: Any) -> triton_pb.InferParameter:
    """One InferParameter, as tritonclient's messages build it."""
    return triton_pb.InferParameter(**value)


def typed_request(model: Trained, rows: pa.Table, **fields: Any) -> triton_pb.ModelInferRequest:
    """A request with values in the typed `contents`, shape [n, 1], as MLServer's codecs send."""
    request = triton_pb.ModelInferRequest(model_name=model.model_id, **fields)
    for name in rows.column_names:
        datatype = "BYTES" if name in model.categorical else "FP64"
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[rows.num_rows, 1])
        values = column_values(rows, name, datatype)
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend(values.tolist())
        else:
            tensor.contents.fp64_contents.extend(values.tolist())
    return request


def test_server_is_live_ready_and_names_its_extensions(
    client: triton.InferenceServerClient,
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata.name == "mlops-service"
    assert "binary_tensor_data" in metadata.extensions


def test_a_model_is_ready_by_id_by_name_and_by_version(
    client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    assert client.is_model_ready(penguins_model.model_id)
    assert client.is_model_ready(penguins_model.name)
    assert client.is_model_ready(penguins_model.model_id, str(penguins_model.version))
    assert not client.is_model_ready(penguins_model.model_id, "99")
    assert not client.is_model_ready("no-such-model")


@pytest.mark.parametrize(
    "version", ["99999999999999999999", "9223372036854775808", "1" + "0" * 5000]
)
def test_a_version_past_any_the_store_holds_is_not_found(
    client: triton.InferenceServerClient, penguins_model: Trained, version: str
) -> None:
    # Was INTERNAL: SQLite's OverflowError, or int()'s 4,300-digit limit.
    assert not client.is_model_ready(penguins_model.name, version)
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata(penguins_model.model_id, version)
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert "versions go up to 9223372036854775807" in caught.value.message()
    inputs = triton_inputs(penguins_model, penguins_model.rows.slice(0, 2))
    with pytest.raises(InferenceServerException) as caught:
        client.infer(penguins_model.name, inputs, model_version=version)
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    assert len(caught.value.message()) < 200


@pytest.mark.parametrize("version", ["\u0661", "\uff11", "0", "00", "-1", "latest"])
def test_a_version_that_is_not_ascii_digits_is_invalid(
    client: triton.InferenceServerClient, penguins_model: Trained, version: str
) -> None:
    # "\u0661" (Arabic-Indic one) and a full-width "1" were read as version 1.
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata(penguins_model.model_id, version)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "is not a version" in caught.value.message()
    assert client.get_model_metadata(penguins_model.model_id, "01").versions == ["1"]


def test_model_metadata_lists_every_feature_and_the_classes(
    client: triton.InferenceServerClient, channel: grpc.Channel, penguins_model: Trained
) -> None:
    metadata = client.get_model_metadata(penguins_model.name)
    assert metadata.name == penguins_model.name  # the name asked for, as ModelReady takes it
    assert list(metadata.versions) == [str(penguins_model.version)]
    inputs = {t.name: t.datatype for t in metadata.inputs}
    assert list(inputs) == penguins_model.rows.column_names
    assert {n for n, d in inputs.items() if d == "BYTES"} == set(penguins_model.categorical)
    outputs = {t.name: (t.datatype, list(t.shape)) for t in metadata.outputs}
    assert outputs == {"label": ("BYTES", [-1]), "probabilities": ("FP64", [-1, 3])}
    ours = inference.GRPCInferenceServiceStub(channel).ModelMetadata(
        inference.ModelMetadataRequest(name=penguins_model.model_id)
    )
    classes = json.loads(ours.outputs[1].parameters["classes"].string_param)
    assert classes == ["Adelie", "Chinstrap", "Gentoo"]


@pytest.mark.parametrize("count", [3, 300], ids=["few-rows", "many-rows"])
def test_infer_with_raw_contents_equals_predict(
    client: triton.InferenceServerClient, channel: grpc.Channel, model: Trained, count: int
) -> None:
    rows = model.rows.slice(0, count)
    expected = predict_v1(channel, model, rows)
    result = client.infer(model.name, triton_inputs(model, rows))
    labels = [v.decode() for v in result.as_numpy("label")]
    assert labels == expected["label"].to_pylist()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), probabilities(expected), rtol=1e-12
    )
    assert result.get_response().model_version == str(model.version)


def test_fp16_inputs_are_read_as_the_numbers_they_hold(
    client: triton.InferenceServerClient, channel: grpc.Channel, penguins_model: Trained
) -> None:
    # A numpy float16 array, as a user of a half-precision pipeline would send it.
    rows = penguins_model.rows.slice(0, 40)
    inputs = triton_inputs(penguins_model, rows)
    halves = {}
    for position, name in enumerate(rows.column_names):
        if name not in penguins_model.categorical and rows[name].null_count == 0:
            halves[name] = column_values(rows, name, "FP64").astype(np.float16)
            inputs[position] = triton.InferInput(name, [rows.num_rows], "FP16")
            inputs[position].set_data_from_numpy(halves[name])
    assert halves
    result = client.infer(penguins_model.model_id, inputs)
    as_sent = rows
    for name, values in halves.items():  # the same numbers as float64: the same answers
        position = as_sent.column_names.index(name)
        as_sent = as_sent.set_column(position, name, pa.array(values.astype(np.float64)))
    expected = predict_v1(channel, penguins_model, as_sent)
    assert [v.decode() for v in result.as_numpy("label")] == expected["label"].to_pylist()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), probabilities(expected), rtol=1e-12
    )
    # The protocol has no typed contents for FP16; a request without raw ones is told so.
    request = typed_request(penguins_model, rows)
    request.inputs[rows.column_names.index(next(iter(halves)))].datatype = "FP16"
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "FP16 values travel in raw_input_contents only" in caught.value.details()


def test_infer_with_typed_contents_equals_predict(channel: grpc.Channel, model: Trained) -> None:
    expected = predict_v1(channel, model, model.rows)
    stub = triton_grpc.GRPCInferenceServiceStub(channel)
    request = typed_request(model, model.rows)
    for name in ("label", "probabilities"):
        wanted = request.outputs.add(name=name)
        wanted.parameters["binary_data"].bool_param = False
    response = stub.ModelInfer(request, timeout=30)
    assert not response.raw_output_contents
    labels, probs = response.outputs
    assert [v.decode() for v in labels.contents.bytes_contents] == expected["label"].to_pylist()
    matrix = np.array(probs.contents.fp64_contents).reshape(list(probs.shape))
    np.testing.assert_allclose(matrix, probabilities(expected), rtol=1e-12)


def test_mlserver_pandas_codec_request_equals_predict(
    channel: grpc.Channel, adult_model: Trained
) -> None:
    # What mlserver 1.7.1's PandasCodec.encode_request + its gRPC converter send (mlserver
    # cannot be installed beside fastapi 0.165 and protobuf 7): request content_type "pd",
    # one input per column, shape [n, 1], BYTES columns marked content_type "str".
    request = typed_request(adult_model, adult_model.rows)
    request.parameters["content_type"].string_param = "pd"
    for tensor in request.inputs:
        if tensor.datatype == "BYTES":
            tensor.parameters["content_type"].string_param = "str"
    response = triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    result = triton.InferResult(response)
    expected = predict_v1(channel, adult_model, adult_model.rows)
    assert [v.decode() for v in result.as_numpy("label")] == expected["label"].to_pylist()


def test_only_the_requested_outputs_come_back(
    client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    result = client.infer(
        penguins_model.model_id,
        triton_inputs(penguins_model, penguins_model.rows),
        outputs=[triton.InferRequestedOutput("probabilities")],
    )
    assert [o.name for o in result.get_response().outputs] == ["probabilities"]
    assert result.as_numpy("label") is None
    assert result.as_numpy("probabilities").shape == (penguins_model.rows.num_rows, 3)


def test_an_output_requested_twice_is_invalid(
    channel: grpc.Channel, penguins_model: Trained
) -> None:
    # Was answered with two label tensors; an input sent twice was already refused.
    request = typed_request(penguins_model, penguins_model.rows.slice(0, 2))
    for name in ("label", "probabilities", "label"):
        request.outputs.add(name=name)
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == {
        "outputs.label": "output 'label' is requested more than once"
    }


def infer_error(
    client: triton.InferenceServerClient, model: str, inputs: list[triton.InferInput]
) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(model, inputs)
    return caught.value


@pytest.mark.parametrize(
    ("where", "value", "said"),
    [
        ("output", inference_pb_param(string_param="true"), "not string"),
        ("output", inference_pb_param(int64_param=1), "not int64"),
        ("request", inference_pb_param(string_param="false"), "not string"),
    ],
)
def test_binary_data_switches_that_are_not_booleans_are_invalid(
    channel: grpc.Channel, penguins_model: Trained, where: str, value: Any, said: str
) -> None:
    # Read as bool_param, a string "true" or an int64 1 was false without a word.
    request = typed_request(penguins_model, penguins_model.rows.slice(0, 2))
    if where == "output":
        request.outputs.add(name="label").parameters["binary_data"].CopyFrom(value)
        field = "outputs.label.parameters.binary_data"
    else:
        request.parameters["binary_data_output"].CopyFrom(value)
        field = "parameters.binary_data_output"
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == {field: f"must be a bool_param (true or false), {said}"}


@pytest.mark.parametrize(
    ("datatype", "field", "value", "error"),
    [
        ("INT8", "int_contents", 300, "300 is outside INT8's range, -128 to 127"),
        ("INT8", "int_contents", -129, "-129 is outside INT8's range, -128 to 127"),
        ("INT16", "int_contents", 70000, "70000 is outside INT16's range, -32768 to 32767"),
        ("UINT8", "uint_contents", 300, "300 is outside UINT8's range, 0 to 255"),
        ("UINT16", "uint_contents", 70000, "70000 is outside UINT16's range, 0 to 65535"),
    ],
)
def test_typed_contents_a_narrow_datatype_cannot_hold_are_invalid(
    channel: grpc.Channel,
    penguins_model: Trained,
    datatype: str,
    field: str,
    value: int,
    error: str,
) -> None:
    # int_contents and uint_contents are 32 bits wide: 300 as an INT8 was read as 300.
    request = typed_request(penguins_model, penguins_model.rows.slice(0, 2))
    mass = request.inputs[penguins_model.rows.column_names.index("body_mass_g")]
    mass.datatype = datatype
    mass.contents.Clear()
    getattr(mass.contents, field).extend([100, value])
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == {"inputs.body_mass_g": f"input 'body_mass_g': {error}"}
    getattr(mass.contents, field)[1] = 100  # within range: read
    triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)


def test_raw_bool_bytes_other_than_0_or_1_are_invalid(
    channel: grpc.Channel, penguins_model: Trained
) -> None:
    # A BOOL is one byte, 1 for true and 0 for false; 2 was read as true.
    request = typed_request(penguins_model, penguins_model.rows.slice(0, 3))
    for tensor in request.inputs:
        if tensor.datatype == "BYTES":
            request.raw_input_contents.append(raw.encode_texts(tensor.contents.bytes_contents))
        elif tensor.name == "body_mass_g":
            tensor.datatype = "BOOL"
            request.raw_input_contents.append(b"\x01\x00\x02")
        else:
            request.raw_input_contents.append(
                np.asarray(tensor.contents.fp64_contents, "<f8").tobytes()
            )
        tensor.ClearField("contents")
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == {
        "inputs.body_mass_g": "input 'body_mass_g': BOOL values are 0 (false) or 1 (true), not 2"
    }
    request.raw_input_contents[penguins_model.rows.column_names.index("body_mass_g")] = (
        b"\x01\x00\x01"
    )
    triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)


def test_an_unknown_model_is_not_found(
    client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    error = infer_error(client, "no-such-model", triton_inputs(penguins_model, penguins_model.rows))
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "no-such-model" in error.message()


def test_bad_inputs_are_invalid_arguments_naming_the_input(
    client: triton.InferenceServerClient, channel: grpc.Channel, penguins_model: Trained
) -> None:
    rows = penguins_model.rows
    good = triton_inputs(penguins_model, rows)
    island = rows.column_names.index("island")
    body_mass = rows.column_names.index("body_mass_g")

    wrong_type = triton.InferInput("island", [rows.num_rows], "FP64")
    wrong_type.set_data_from_numpy(np.zeros(rows.num_rows))
    ragged = triton.InferInput("body_mass_g", [rows.num_rows - 1], "FP64")
    ragged.set_data_from_numpy(np.zeros(rows.num_rows - 1))
    cases = {
        "inputs.island": [*good[:island], wrong_type, *good[island + 1 :]],
        "inputs.sex": [t for t in good if t.name() != "sex"],
        "inputs.body_mass_g": [*good[:body_mass], ragged, *good[body_mass + 1 :]],
    }
    for field, inputs in cases.items():
        error = infer_error(client, penguins_model.model_id, inputs)
        assert error.status() == "StatusCode.INVALID_ARGUMENT", error
        assert error.message().startswith(f"{field}: "), error.message()
        assert f"'{field.removeprefix('inputs.')}'" in error.message()


def test_field_violations_travel_as_rich_details(
    channel: grpc.Channel, penguins_model: Trained
) -> None:
    request = typed_request(penguins_model, penguins_model.rows)
    del request.inputs[0]
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(caught.value)) == ["inputs.island"]


def test_raw_contents_that_do_not_fit_their_shape_are_refused(
    channel: grpc.Channel, penguins_model: Trained
) -> None:
    request = typed_request(penguins_model, penguins_model.rows)
    for tensor in request.inputs:
        tensor.ClearField("contents")
        request.raw_input_contents.append(b"\x00" * 3)
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs.island" in violations(caught.value)


@pytest.mark.parametrize("rows", [2**62, 2**40, 65])
def test_a_shape_of_more_text_elements_than_the_bytes_hold_is_refused(
    channel: grpc.Channel, penguins_model: Trained, rows: int
) -> None:
    # Was INTERNAL at 2**62 ("array is too big"): the shape sized an array before the
    # contents were read; at 2**40, an 8 TiB allocation asked of the machine.
    request = triton_pb.ModelInferRequest(model_name=penguins_model.model_id)
    for name in penguins_model.rows.column_names:
        text = name in penguins_model.categorical
        request.inputs.add(name=name, datatype="BYTES" if text else "FP64", shape=[rows])
        request.raw_input_contents.append(b"\x01\x00\x00\x00a" if text else b"\x00" * 8)
    with pytest.raises(grpc.RpcError) as caught:
        triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(caught.value)
    assert f"holds fewer than {rows} length-prefixed elements" in found["inputs.island"]


def test_reflection_lists_the_service_and_buf_curl_reads_model_metadata(
    service: ServiceThread, penguins_model: Trained
) -> None:
    url = f"http://{service.target}"
    common = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    listed = buf(*common, "--list-services", url)
    assert listed.returncode == 0, listed.stderr
    assert {"inference.GRPCInferenceService", "mlops.v1.ModelService"} <= set(listed.stdout.split())
    body = json.dumps({"name": penguins_model.name})
    answer = buf(*common, "--data", body, f"{url}/inference.GRPCInferenceService/ModelMetadata")
    assert answer.returncode == 0, answer.stderr
    metadata = json.loads(answer.stdout)
    assert metadata["name"] == penguins_model.name
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]
    health = buf(
        *common,
        "--data",
        json.dumps({"service": "inference.GRPCInferenceService"}),
        f"{url}/grpc.health.v1.Health/Check",
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}, health.stderr


def test_a_name_two_models_share_must_be_an_id(
    client: triton.InferenceServerClient, channel: grpc.Channel, penguins: pa.Table
) -> None:
    first = train(channel, penguins.slice(0, 200), "species", "twins")
    train(channel, penguins.slice(0, 200), "species", "twins")
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("twins")
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "2 models are named 'twins'" in caught.value.message()
    assert client.get_model_metadata(first.model_id).name == first.model_id


def test_the_compiled_descriptor_matches_the_proto(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)], check=True)
    name = Path("inference") / "grpc_predict_v2.binpb"
    assert filecmp.cmp(tmp_path / name, ROOT / "proto" / name, shallow=False), (
        "run `python proto/generate.py`"
    )


def test_metadata_and_answers_carry_the_name_the_caller_used(
    client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    # Was the model's id whatever the request named: the V2 protocol's metadata `name` and
    # infer `model_name` are the model's name as the client addresses it (Triton echoes it).
    rows = penguins_model.rows.slice(0, 2)
    for name in (penguins_model.name, penguins_model.model_id):
        assert client.is_model_ready(name)
        assert client.get_model_metadata(name).name == name
        version = str(penguins_model.version)
        assert client.get_model_metadata(name, version).name == name
        answer = client.infer(name, triton_inputs(penguins_model, rows)).get_response()
        assert (answer.model_name, answer.model_version) == (name, version)
