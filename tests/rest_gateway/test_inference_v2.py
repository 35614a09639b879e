"""The Open Inference Protocol's REST API on the gateway: tritonclient.http, unmodified."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pyarrow as pa
import pytest
import tritonclient.http as triton
import uvicorn
from tritonclient.utils import InferenceServerException

from rest_gateway import v2_tensors
from rest_gateway.app import create_app
from tests.conftest import DATA_DIR, ServiceThread
from tests.ml_service.helpers import read_csv
from tests.ml_service.v2_helpers import Trained, column_values, predict_v1, probabilities, train
from tests.rest_gateway.conftest import gateway_settings


@pytest.fixture(scope="module")
def gateway(service: ServiceThread) -> Iterator[str]:
    """A real gateway on a free loopback port, as tritonclient.http needs a socket to talk to."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(gateway_settings(service.target)), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the gateway did not start"
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def client(gateway: str) -> Iterator[triton.InferenceServerClient]:
    tc = triton.InferenceServerClient(gateway)
    yield tc
    tc.close()


@pytest.fixture(scope="module")
def channel(service: ServiceThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(service.target) as ch:
        yield ch


@pytest.fixture(scope="module")
def penguins_model(channel: grpc.Channel) -> Trained:
    return train(channel, read_csv(DATA_DIR / "penguins.csv"), "species", "penguins-rest-v2")


@pytest.fixture(scope="module")
def adult_model(channel: grpc.Channel) -> Trained:
    adult = read_csv(DATA_DIR / "adult.csv").slice(0, 3000)
    return train(channel, adult, "income", "adult-rest-v2")


@pytest.fixture(params=["penguins", "adult"])
def model(request: pytest.FixtureRequest) -> Trained:
    """Three classes (penguins) and two (adult)."""
    trained: Trained = request.getfixturevalue(f"{request.param}_model")
    return trained


def json_inputs(model: Trained, rows: int, leave_out: str = "") -> list[dict[str, Any]]:
    """The first `rows` rows of the model's data as V2 JSON inputs (text as BYTES, numbers as
    FP64), without the column `leave_out`."""
    table = model.rows.slice(0, rows)
    return [
        {
            "name": name,
            "datatype": "BYTES" if name in model.categorical else "FP64",
            "shape": [rows],
            "data": table[name].to_pylist(),
        }
        for name in table.column_names
        if name != leave_out
    ]


def inputs_for(model: Trained, rows: pa.Table, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name in rows.column_names:
        integer = pa.types.is_integer(rows.schema.field(name).type) and rows[name].null_count == 0
        datatype = "BYTES" if name in model.categorical else "INT64" if integer else "FP64"
        tensor = triton.InferInput(name, [rows.num_rows, 1], datatype)
        values = column_values(rows, name, datatype).reshape(-1, 1)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_health_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def test_model_ready_and_metadata_by_name(
    client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    assert client.is_model_ready(penguins_model.name)
    assert client.is_model_ready(penguins_model.model_id, str(penguins_model.version))
    assert not client.is_model_ready("no-such-model")
    metadata = client.get_model_metadata(penguins_model.name)
    assert [i["name"] for i in metadata["inputs"]] == penguins_model.rows.column_names
    probs = metadata["outputs"][1]
    assert probs["shape"] == [-1, 3]
    assert probs["parameters"]["classes"] == '["Adelie", "Chinstrap", "Gentoo"]'


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_predict(
    client: triton.InferenceServerClient, channel: grpc.Channel, model: Trained, binary: bool
) -> None:
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client.infer(model.name, inputs_for(model, model.rows, binary), outputs=outputs)
    expected = predict_v1(channel, model, model.rows)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
    assert labels == expected["label"].to_pylist()
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), probabilities(expected), rtol=1e-12
    )


def test_fp16_json_and_binary_inputs_are_read(
    gateway: str, client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    rows = penguins_model.rows.slice(0, 3)
    for binary in (True, False):
        inputs = inputs_for(penguins_model, rows, binary)
        mass = [t.name() for t in inputs].index("body_mass_g")
        inputs[mass] = triton.InferInput("body_mass_g", [rows.num_rows, 1], "FP16")
        values = column_values(rows, "body_mass_g", "FP64").astype(np.float16).reshape(-1, 1)
        inputs[mass].set_data_from_numpy(values, binary_data=binary)
        assert len(client.infer(penguins_model.model_id, inputs).as_numpy("label")) == 3
    bf16 = {"name": "body_mass_g", "datatype": "BF16", "shape": [1], "data": [1.0]}
    answer = httpx.post(
        f"http://{gateway}/v2/models/{penguins_model.model_id}/infer", json={"inputs": [bf16]}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "inputs.body_mass_g: datatype 'BF16' is not one this service reads: BOOL, INT8-INT64, "
        "UINT8-UINT64, FP16, FP32, FP64 or BYTES"
    )


def test_only_the_requested_outputs_come_back(
    client: triton.InferenceServerClient, adult_model: Trained
) -> None:
    result = client.infer(
        adult_model.model_id,
        inputs_for(adult_model, adult_model.rows, True),
        outputs=[triton.InferRequestedOutput("label")],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("probabilities") is None


def test_an_output_requested_twice_is_a_400(gateway: str, penguins_model: Trained) -> None:
    # Was a 200 with two label tensors.
    inputs = json_inputs(penguins_model, 1)
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    answer = httpx.post(url, json={"inputs": inputs, "outputs": [{"name": "label"}] * 2})
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "outputs.label: output 'label' is requested more than once"},
    )


def test_mlserver_pandas_codec_json_equals_predict(
    gateway: str, channel: grpc.Channel, penguins_model: Trained
) -> None:
    # The JSON mlserver 1.7.1's PandasCodec.encode_request writes (mlserver cannot be
    # installed beside fastapi 0.165): content_type "pd", [n, 1] per column, strings marked
    # "str", and null where a float column holds NaN.
    rows = penguins_model.rows
    inputs: list[dict[str, Any]] = []
    for name in rows.column_names:
        values = rows[name].to_pylist()
        if name in penguins_model.categorical:
            entry = {"datatype": "BYTES", "parameters": {"content_type": "str"}}
        else:
            integer = pa.types.is_integer(rows.schema.field(name).type) and None not in values
            entry = {"datatype": "INT64" if integer else "FP64"}
        inputs.append({"name": name, "shape": [len(values), 1], "data": values, **entry})
    body = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    response = httpx.post(f"http://{gateway}/v2/models/{penguins_model.name}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    expected = predict_v1(channel, penguins_model, rows)
    assert outputs["label"]["data"] == expected["label"].to_pylist()


def test_errors_are_the_protocols_json_with_the_tables_status(
    gateway: str, client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    url = f"http://{gateway}/v2/models"
    rows = penguins_model.rows.slice(0, 2)
    good = [
        {"name": "island", "datatype": "BYTES", "shape": [2], "data": rows["island"].to_pylist()}
    ]
    unknown = httpx.post(f"{url}/no-such-model/infer", json={"inputs": good})
    assert unknown.status_code == 404
    assert "no-such-model" in unknown.json()["error"]

    cases = {
        "inputs.island": [{**good[0], "datatype": "FP64", "data": [1.0, 2.0]}],
        "inputs.sex": good,
        "inputs.body_mass_g": [
            *good,
            {"name": "body_mass_g", "datatype": "FP64", "shape": [3], "data": [1.0, 2.0, 3.0]},
        ],
    }
    for field, inputs in cases.items():
        answer = httpx.post(f"{url}/{penguins_model.model_id}/infer", json={"inputs": inputs})
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert field in answer.json()["error"], (field, answer.json())

    not_json = httpx.post(f"{url}/{penguins_model.model_id}/infer", content=b"{")
    assert not_json.status_code == 400
    assert "not a JSON inference request" in not_json.json()["error"]
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("no-such-model")
    assert caught.value.status() == "404"


def test_a_version_past_any_the_store_holds_is_a_404(gateway: str, penguins_model: Trained) -> None:
    # Was 500 "internal error": the service's store could not take the number.
    url = f"http://{gateway}/v2/models/{penguins_model.name}/versions/99999999999999999999"
    for answer in (httpx.get(url), httpx.post(f"{url}/infer", json={})):
        assert answer.status_code == 404, answer.text
        assert "versions go up to 9223372036854775807" in answer.json()["error"]
    assert httpx.get(f"{url}/ready").status_code == 400  # not ready, as Triton answers


def test_numbers_past_64_bits_and_parameters_of_no_protocol_type_are_400s(
    gateway: str, penguins_model: Trained
) -> None:
    # Each was a 500 "internal error" (protobuf's range or type errors, int()'s digit
    # limit), or reached the service as Python's spelling: null as the string "None".
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    mass = {"name": "body_mass_g", "datatype": "FP64", "shape": [1], "data": [3750.0]}
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "huge dimension": (
            {"inputs": [{**mass, "shape": [2**70]}]},
            "inputs.body_mass_g: shape must be a list of integers (each within 64 bits)",
        ),
        "boolean dimension": (
            {"inputs": [{**mass, "shape": [True]}]},
            "inputs.body_mass_g: shape must be a list of integers (each within 64 bits)",
        ),
        "huge parameter": (
            {"inputs": [mass], "parameters": {"seed": 2**64}},
            "parameters.seed: 18446744073709551616 does not fit a 64-bit integer",
        ),
        "null parameter": (
            {"inputs": [{**mass, "parameters": {"content_type": None}}]},
            "inputs.body_mass_g.parameters.content_type: must be a string, number or boolean",
        ),
        "list parameter": (
            {"inputs": [mass], "outputs": [{"name": "label", "parameters": {"x": [1]}}]},
            "outputs.label.parameters.x: must be a string, number or boolean",
        ),
    }
    for case, (body, error) in cases.items():
        answer = httpx.post(url, json=body)
        assert answer.status_code == 400, (case, answer.text)
        assert answer.json() == {"error": error}, case
    digits = httpx.post(url, content=b'{"id": 1' + b"0" * 5000 + b"}")
    assert digits.status_code == 400, digits.text
    assert digits.json()["error"] == (
        "body: not a JSON inference request: it holds a number of over 4,300 digits"
    )


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_as_tritonclient_sends_them_are_read(
    client: triton.InferenceServerClient, penguins_model: Trained, algorithm: str
) -> None:
    # Was a 400 "'utf-8' codec can't decode byte 0x8b in position 1" for gzip.
    rows = penguins_model.rows.slice(0, 5)
    for binary in (True, False):
        result = client.infer(
            penguins_model.model_id,
            inputs_for(penguins_model, rows, binary),
            request_compression_algorithm=algorithm,
        )
        assert len(result.as_numpy("label")) == 5


def test_a_compressed_body_cut_short_too_large_or_mislabelled_is_refused(
    gateway: str, penguins_model: Trained
) -> None:
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    packed = gzip.compress(b'{"inputs": []}')
    cut = httpx.post(url, content=packed[:-6], headers={"Content-Encoding": "gzip"})
    assert (cut.status_code, cut.json()) == (400, {"error": "body: the gzip body is cut short"})
    plain = httpx.post(url, content=b'{"inputs": []}', headers={"Content-Encoding": "gzip"})
    assert plain.status_code == 400
    assert plain.json()["error"] == (
        "body: the body is not gzip data, as its Content-Encoding says"
    )
    brotli = httpx.post(url, content=b"...", headers={"Content-Encoding": "br"})
    assert brotli.status_code == 415
    # A few kilobytes inflating past the JSON cap: refused as they inflate.
    bomb = httpx.post(
        url, content=gzip.compress(b" " * (64 << 20)), headers={"Content-Encoding": "gzip"}
    )
    assert bomb.status_code == 413
    assert "The JSON of an inference request is limited to" in bomb.json()["error"]


def test_errors_the_gateway_makes_itself_under_v2_are_the_protocols_json(
    gateway: str, client: triton.InferenceServerClient, penguins_model: Trained
) -> None:
    # tritonclient reads body["error"]; a problem+json body made it say "an exception
    # occurred in the client while decoding the response: 'error'".
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("a/b")  # quoted as a/b: no route has two segments there
    assert caught.value.status() == "404"
    assert caught.value.message() == "Not Found"
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}"
    wrong_method = httpx.get(f"{url}/infer")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/json"
    assert wrong_method.json() == {"error": "Method Not Allowed"}
    assert wrong_method.headers["allow"] == "POST"
    climbing = httpx.get(f"http://{gateway}/v2/models/..%2F..%2Fetc")
    assert climbing.status_code == 400
    assert climbing.json()["error"].startswith("path: ids are 1 to 128 letters")
    # The rest of the gateway keeps its problem details.
    assert httpx.get(f"http://{gateway}/v1/nowhere").headers["content-type"] == (
        "application/problem+json"
    )


@pytest.mark.parametrize(
    ("datatype", "value", "error"),
    [
        ("INT64", 3750.5, "INT64 data must be whole numbers, not 3750.5"),
        ("INT64", 2**63, "9223372036854775808 is outside INT64's range, "),
        ("UINT64", 2**64, "18446744073709551616 is outside UINT64's range, 0 to "),
        ("UINT8", -1, "-1 is outside UINT8's range, 0 to 255"),
        ("INT8", 300, "300 is outside INT8's range, -128 to 127"),
        ("INT32", 1e30, "1e+30 is outside INT32's range, "),
        ("FP64", 10**400, "holds numbers too large for FP64"),
    ],
)
def test_json_numbers_an_integer_datatype_cannot_hold_are_400s_in_plain_words(
    gateway: str, penguins_model: Trained, datatype: str, value: Any, error: str
) -> None:
    # 3750.5 as INT64 was cut to 3750 and answered; the others named numpy's and Python's
    # internals ("Python int too large to convert to C long").
    inputs = json_inputs(penguins_model, 1, "body_mass_g")
    inputs.append({"name": "body_mass_g", "datatype": datatype, "shape": [1], "data": [value]})
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    answer = httpx.post(url, json={"inputs": inputs})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"inputs.body_mass_g: {error}"), answer.json()
    inputs[-1]["data"] = [100.0 if datatype.startswith("INT") else 100]  # whole: read
    assert httpx.post(url, json={"inputs": inputs}).status_code == 200


def test_bool_values_other_than_0_or_1_are_400s_as_json_and_binary(
    gateway: str, penguins_model: Trained
) -> None:
    # JSON 2 and a binary byte 2 were both read as true.
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    inputs = json_inputs(penguins_model, 2, "body_mass_g")
    mass = {"name": "body_mass_g", "datatype": "BOOL", "shape": [2]}
    for data, said in (([True, 2], "2"), ([0.5, 1], "0.5")):
        answer = httpx.post(url, json={"inputs": [*inputs, {**mass, "data": data}]})
        assert (answer.status_code, answer.json()) == (
            400,
            {"error": f"inputs.body_mass_g: BOOL values are 0 (false) or 1 (true), not {said}"},
        )
    header = json.dumps(
        {"inputs": [*inputs, {**mass, "parameters": {"binary_data_size": 2}}]}
    ).encode()
    binary = httpx.post(
        url, content=header + b"\x01\x02", headers={v2_tensors.HEADER_LENGTH: str(len(header))}
    )
    assert binary.status_code == 400, binary.text
    assert binary.json()["error"] == (
        "inputs.body_mass_g: input 'body_mass_g': BOOL values are 0 (false) or 1 (true), not 2"
    )
    for data in ([True, False], [1, 0]):
        ok = httpx.post(url, json={"inputs": [*inputs, {**mass, "data": data}]})
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("datatype", "value", "error"),
    [
        ("FP32", 1e300, "1e+300 is outside FP32's range, -3.4028235e+38 to 3.4028235e+38"),
        ("FP32", -1e39, "-1e+39 is outside FP32's range, -3.4028235e+38 to 3.4028235e+38"),
        ("FP16", 70000, "70000 is outside FP16's range, -65504 to 65504"),
    ],
)
def test_json_numbers_past_a_float_datatypes_range_are_400s_naming_the_range(
    gateway: str, penguins_model: Trained, datatype: str, value: Any, error: str
) -> None:
    # Was "holds infinite values": the cast to FP32 made them infinite before anyone looked.
    inputs = json_inputs(penguins_model, 1, "body_mass_g")
    mass = {"name": "body_mass_g", "datatype": datatype, "shape": [1], "data": [value]}
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    answer = httpx.post(url, json={"inputs": [*inputs, mass]})
    assert (answer.status_code, answer.json()) == (400, {"error": f"inputs.body_mass_g: {error}"})
    mass["data"] = [3750.0]
    assert httpx.post(url, json={"inputs": [*inputs, mass]}).status_code == 200


def test_binary_data_switches_and_sizes_of_another_type_are_400s(
    gateway: str, penguins_model: Trained
) -> None:
    # "binary_data": "false" was read as bool("false"), True: binary came back; a size of
    # 8.0 or "8" was said to run "past the end of the binary data".
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    inputs = json_inputs(penguins_model, 1)
    cases = {
        'outputs.label.parameters.binary_data: must be true or false, not "false"': {
            "inputs": inputs,
            "outputs": [{"name": "label", "parameters": {"binary_data": "false"}}],
        },
        "parameters.binary_data_output: must be true or false, not 0": {
            "inputs": inputs,
            "parameters": {"binary_data_output": 0},
        },
    }
    for error, body in cases.items():
        answer = httpx.post(url, json=body)
        assert (answer.status_code, answer.json()) == (400, {"error": error})
    header = json.dumps(
        {"inputs": [{**inputs[1], "parameters": {"binary_data_size": 8.0}}]}
    ).encode()
    sized = httpx.post(
        url,
        content=header + b"\x00" * 8,
        headers={v2_tensors.HEADER_LENGTH: str(len(header))},
    )
    assert sized.status_code == 400
    assert sized.json()["error"] == (
        f"inputs.{inputs[1]['name']}.parameters.binary_data_size: "
        "must be a whole number of bytes, not 8.0"
    )
    answer = httpx.post(
        url,
        json={
            "inputs": inputs,
            "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
        },
    )
    assert answer.headers["content-type"] == "application/json"


def test_an_input_with_both_data_and_binary_data_size_is_a_400(
    gateway: str, penguins_model: Trained
) -> None:
    # The binary data was used and the JSON data dropped without a word.
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    mass = {"name": "body_mass_g", "datatype": "FP64", "shape": [1], "data": [3750.0]}
    header = json.dumps({"inputs": [{**mass, "parameters": {"binary_data_size": 8}}]}).encode()
    answer = httpx.post(
        url,
        content=header + np.float64(5000.0).tobytes(),
        headers={v2_tensors.HEADER_LENGTH: str(len(header))},
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "inputs.body_mass_g: has both data and binary_data_size; send one of them"},
    )


def test_a_header_length_past_the_body_and_ids_that_are_not_strings_are_named(
    gateway: str, penguins_model: Trained
) -> None:
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    mass = {"name": "body_mass_g", "datatype": "FP64", "shape": [1]}
    header = json.dumps({"inputs": [{**mass, "parameters": {"binary_data_size": 8}}]}).encode()
    body = header + b"\xcd" * 8

    # Was "'utf-8' codec can't decode byte 0xcd in position 98: invalid continuation byte".
    longer = httpx.post(url, content=body, headers={v2_tensors.HEADER_LENGTH: "1000000"})
    assert longer.status_code == 400
    assert longer.json()["error"] == (
        f"{v2_tensors.HEADER_LENGTH}: says the JSON header takes 1000000 bytes; the whole body"
        f" has {len(body)}"
    )
    missing = httpx.post(url, content=body, headers={"Content-Type": "application/octet-stream"})
    assert missing.status_code == 400
    assert missing.json()["error"] == (
        f"body: not a JSON inference request: byte {len(header)} is not UTF-8 text; binary"
        f" tensor data follows the JSON only with an {v2_tensors.HEADER_LENGTH} header"
    )
    short = httpx.post(url, content=body, headers={v2_tensors.HEADER_LENGTH: "10"})
    assert short.status_code == 400
    assert short.json()["error"].startswith(
        f"body: not a JSON inference request (its first 10 bytes, as {v2_tensors.HEADER_LENGTH}"
        " says): "
    )

    # An id of another type was echoed as Python wrote it: "None", "{'a': 1}", "True".
    for given in ({"a": 1}, True, 5):
        answer = httpx.post(url, json={"id": given, "inputs": []})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == f"id: must be a JSON string, not {json.dumps(given)}"
    inputs = json_inputs(penguins_model, 1)
    assert "id" not in httpx.post(url, json={"id": None, "inputs": inputs}).json()
    assert httpx.post(url, json={"id": "é-1", "inputs": inputs}).json()["id"] == "é-1"


def test_json_over_the_json_cap_is_refused_before_it_becomes_python_objects(
    service: ServiceThread, penguins_model: Trained
) -> None:
    from fastapi.testclient import TestClient

    # JSON numbers become Python objects ten times their size: a 97 kB gzip of 100 MB of
    # JSON took the gateway to 1.5 GB. The JSON of a request has the JSON cap, 16 kB here.
    settings = gateway_settings(service.target, max_json_bytes=16 * 1024)
    rows = pa.concat_tables([penguins_model.rows] * 2)
    url = f"/v2/models/{penguins_model.model_id}/infer"
    as_json, _ = triton.InferenceServerClient.generate_request_body(
        inputs_for(penguins_model, rows, binary=False)
    )
    as_binary, header_length = triton.InferenceServerClient.generate_request_body(
        inputs_for(penguins_model, rows, binary=True)
    )
    assert len(as_json) > 16 * 1024 and header_length is not None and header_length < 16 * 1024
    with TestClient(create_app(settings)) as http:
        refused = [
            http.post(url, content=as_json),
            http.post(url, content=gzip.compress(as_json), headers={"Content-Encoding": "gzip"}),
            http.post(url, content=as_binary, headers={v2_tensors.HEADER_LENGTH: "20000"}),
        ]
        # The same tensors as binary data after a small JSON header are answered.
        answered = http.post(
            url, content=as_binary, headers={v2_tensors.HEADER_LENGTH: str(header_length)}
        )
    for response in refused:
        assert response.status_code == 413
        assert "limited to 16384 bytes (MLOPS_GATEWAY_MAX_JSON_BYTES)" in response.json()["error"]
    assert answered.status_code == 200


def test_json_nested_past_the_parsers_depth_is_a_400(gateway: str, penguins_model: Trained) -> None:
    url = f"http://{gateway}/v2/models/{penguins_model.model_id}/infer"
    deep = httpx.post(url, content=b'{"inputs": ' + b"[" * 5_000 + b"]" * 5_000 + b"}")
    assert deep.status_code == 400
    assert deep.json()["error"] == (
        "body: not a JSON inference request: its arrays or objects nest too deep"
    )
    assert httpx.get(f"http://{gateway}/v2/health/live").status_code == 200


def test_a_binary_body_larger_than_a_message_is_refused_before_it_is_inflated(
    service: ServiceThread, penguins_model: Trained
) -> None:
    from fastapi.testclient import TestClient

    # The request becomes one gRPC message; a body larger could never be sent, yet 300 kB
    # of gzip inflating to 300 MB took the gateway to 1 GB in copies before gRPC refused.
    settings = gateway_settings(service.target, max_message_bytes=1024 * 1024)
    rows = 200_000  # 1.6 MB of FP64
    header = json.dumps(
        {"inputs": [{"name": "body_mass_g", "datatype": "FP64", "shape": [rows],
                     "parameters": {"binary_data_size": 8 * rows}}]}
    ).encode()  # fmt: skip
    body = header + bytes(8 * rows)
    url = f"/v2/models/{penguins_model.model_id}/infer"
    headers = {v2_tensors.HEADER_LENGTH: str(len(header))}
    gzipped = {**headers, "Content-Encoding": "gzip"}
    with TestClient(create_app(settings)) as http:
        refused = [
            http.post(url, content=gzip.compress(body), headers=gzipped),
            http.post(url, content=body, headers=headers),
        ]
    for response in refused:
        assert response.status_code == 413
        assert "one gRPC message: its body is limited to 1048576 bytes" in response.json()["error"]


def test_metadata_and_answers_carry_the_name_the_caller_used(
    client: triton.InferenceServerClient, gateway: str, penguins_model: Trained
) -> None:
    # Was the model's id in `name` and `model_name` while /ready echoed the name asked for.
    rows = penguins_model.rows.slice(0, 2)
    version = str(penguins_model.version)
    for name in (penguins_model.name, penguins_model.model_id):
        ready = httpx.get(f"http://{gateway}/v2/models/{name}/ready")
        assert ready.json() == {"name": name, "ready": True}
        assert client.get_model_metadata(name)["name"] == name
        assert client.get_model_metadata(name, version)["name"] == name
        answer = client.infer(name, inputs_for(penguins_model, rows, True)).get_response()
        assert (answer["model_name"], answer["model_version"]) == (name, version)
