"""V2 REST bodies <-> gRPC V2 messages: JSON tensors and the binary tensor data extension.

Every input goes to the service as raw contents (inference.raw), binary parts unchanged and
JSON data packed, and every output comes back raw: JSON outputs are unpacked here, binary
ones are passed through after the JSON header (`Inference-Header-Content-Length` bytes).
The service checks names, datatypes and shapes; only what JSON itself cannot say is
checked here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import inference
import numpy as np
from inference import raw

from rest_gateway.problems import ProblemError

HEADER_LENGTH = "Inference-Header-Content-Length"
#: Shapes and integer parameters travel as int64.
INT64 = range(-(2**63), 2**63)


def json_over_the_cap(max_bytes: int) -> ProblemError:
    """The 413 for an inference request whose JSON is over the gateway's JSON cap."""
    return ProblemError(
        413,
        f"The JSON of an inference request is limited to {max_bytes} bytes"
        " (MLOPS_GATEWAY_MAX_JSON_BYTES), as its values become Python objects; send large"
        f" tensors as binary data after the JSON (binary_data_size, {HEADER_LENGTH}).",
    )


def over_a_message(max_bytes: int) -> ProblemError:
    """The 413 for an inference request larger than the one gRPC message it becomes."""
    return ProblemError(
        413,
        f"An inference request goes to the service as one gRPC message: its body is limited"
        f" to {max_bytes} bytes, decompressed (the smaller of MLOPS_GATEWAY_MAX_MESSAGE_BYTES"
        " and MLOPS_GATEWAY_MAX_BODY_BYTES).",
    )


def _invalid(field: str, description: str) -> ProblemError:
    return ProblemError.invalid(field, description)


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if any(isinstance(item, list) for item in data):
        return [value for item in data for value in _flat(item)]
    return data


def pack_json(field: str, datatype: str, data: Any) -> bytes:
    """Pack a JSON tensor's data (flat or nested, row-major) as raw contents."""
    values = _flat(data)
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            raise _invalid(field, "BYTES data must be JSON strings")
        encoded: bytes = raw.encode_texts([v.encode() for v in values])
        return encoded
    dtype = raw.DTYPES.get(datatype)
    if dtype is None:
        raise _invalid(
            field,
            f"datatype {datatype!r} is not one this service reads: BOOL, INT8-INT64, "
            "UINT8-UINT64, FP16, FP32, FP64 or BYTES",
        )
    if dtype.kind == "f":
        # JSON has no NaN; null is the missing value, as MLServer's pandas codec writes it.
        values = [math.nan if v is None else v for v in values]
    if not all(isinstance(v, bool | int | float) for v in values):
        raise _invalid(field, f"{datatype} data must be JSON numbers")
    if datatype == "BOOL":
        try:
            raw.check_bools(values)
        except raw.RawError as exc:
            raise _invalid(field, str(exc)) from None
    if dtype.kind in "iu":
        # numpy would cut 3750.5 to 3750 without a word, and names a value out of range in
        # its own terms ("Python int too large to convert to C long").
        try:
            raw.check_integers(datatype, values)
        except raw.RawError as exc:
            raise _invalid(field, str(exc)) from None
    try:
        with np.errstate(over="ignore"):
            packed = np.asarray(values, dtype)
    except (OverflowError, ValueError):
        raise _invalid(field, f"holds numbers too large for {datatype}") from None
    if dtype.kind == "f" and np.isinf(packed).any():
        _check_floats(field, datatype, values, packed)
    return packed.tobytes()


def _check_floats(field: str, datatype: str, values: list[Any], packed: np.ndarray) -> None:
    # The cast turns 1e300 into FP32's infinity, which the service would call infinite: the
    # sender wrote a finite number.
    limit = float(np.finfo(packed.dtype).max)
    for value, cast in zip(values, packed.tolist(), strict=True):
        if math.isinf(cast) and not math.isinf(value):
            raise _invalid(
                field, f"{value} is outside {datatype}'s range, {-limit:.8g} to {limit:.8g}"
            )


def unpack(datatype: str, data: bytes, count: int) -> list[Any]:
    """Unpack raw output contents as JSON values."""
    if datatype == "BYTES":
        return [v.decode() for v in raw.decode_bytes(data, count)]
    values: list[Any] = np.frombuffer(data, raw.DTYPES[datatype]).tolist()
    return values


def _parameter(field: str, value: Any) -> Any:
    param = inference.InferParameter()
    if isinstance(value, bool):
        param.bool_param = value
    elif isinstance(value, int):
        if value not in INT64:
            raise _invalid(field, f"{value} does not fit a 64-bit integer")
        param.int64_param = value
    elif isinstance(value, float):
        param.double_param = value
    elif isinstance(value, str):
        param.string_param = value
    else:
        # The protocol's parameters are strings, numbers and booleans; str() of a list or
        # null would reach the model as Python's spelling of it.
        raise _invalid(field, "must be a string, number or boolean")
    return param


def _copy_parameters(target: Any, given: Any, field: str) -> dict[str, Any]:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise _invalid(field, "parameters must be a JSON object")
    for key, value in given.items():
        if key != "binary_data_size":
            target[key].CopyFrom(_parameter(f"{field}.{key}", value))
    return given


def _switch(given: dict[str, Any], key: str, default: bool, field: str) -> bool:
    value = given.get(key, default)
    # bool("false") is True: a string here would ask for the opposite of what it says.
    if not isinstance(value, bool):
        raise _invalid(f"{field}.{key}", f"must be true or false, not {json.dumps(value)}")
    return value


def _objects(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _invalid(key, f"{key} must be a list of JSON objects")
    return items


def infer_request(model: str, version: str, body: bytes, header_length: int | None) -> Any:
    """Build the gRPC request; also return which outputs the client wants as binary data."""
    if header_length is not None and header_length > len(body):
        raise _invalid(
            HEADER_LENGTH,
            f"says the JSON header takes {header_length} bytes; the whole body has {len(body)}",
        )
    header, blobs = (
        (body, b"") if header_length is None else (body[:header_length], body[header_length:])
    )
    # Where the JSON was cut from, for a client whose header length is off.
    within = (
        ""
        if header_length is None
        else f" (its first {header_length} bytes, as {HEADER_LENGTH} says)"
    )
    try:
        parsed = json.loads(header)
    except UnicodeDecodeError as exc:
        hint = (
            f"; binary tensor data follows the JSON only with an {HEADER_LENGTH} header"
            if header_length is None
            else ""
        )
        raise _invalid(
            "body",
            f"not a JSON inference request{within}: byte {exc.start} is not UTF-8 text{hint}",
        ) from None
    except json.JSONDecodeError as exc:
        raise _invalid("body", f"not a JSON inference request{within}: {exc}") from None
    except RecursionError:
        raise _invalid(
            "body", f"not a JSON inference request{within}: its arrays or objects nest too deep"
        ) from None
    except ValueError:
        # Python's int() refuses over 4,300 digits; no tensor or parameter holds such a number.
        raise _invalid(
            "body", "not a JSON inference request: it holds a number of over 4,300 digits"
        ) from None
    if not isinstance(parsed, dict):
        raise _invalid("body", "the inference request must be a JSON object")
    request = inference.ModelInferRequest(model_name=model, model_version=version)
    given_id = parsed.get("id")
    if given_id is not None and not isinstance(given_id, str):
        # str() would echo Python's spelling of it: {'a': 1}, True.
        raise _invalid("id", f"must be a JSON string, not {json.dumps(given_id)[:80]}")
    request.id = given_id or ""
    settings = _copy_parameters(request.parameters, parsed.get("parameters"), "parameters")
    position = 0
    for entry in _objects(parsed, "inputs"):
        name, field = str(entry.get("name", "")), f"inputs.{entry.get('name', '')}"
        shape = entry.get("shape", [])
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d in INT64 for d in shape
        ):
            raise _invalid(field, "shape must be a list of integers (each within 64 bits)")
        tensor = request.inputs.add(name=name, datatype=str(entry.get("datatype", "")), shape=shape)
        given = _copy_parameters(tensor.parameters, entry.get("parameters"), f"{field}.parameters")
        size = given.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise _invalid(
                    f"{field}.parameters.binary_data_size",
                    f"must be a whole number of bytes, not {json.dumps(size)}",
                )
            if "data" in entry:
                # One of them would be dropped without a word; gRPC refuses contents beside
                # raw_input_contents alike.
                raise _invalid(field, "has both data and binary_data_size; send one of them")
            if position + size > len(blobs):
                raise _invalid(field, "binary_data_size runs past the end of the binary data")
            request.raw_input_contents.append(blobs[position : position + size])
            position += size
        elif "data" in entry:
            request.raw_input_contents.append(pack_json(field, tensor.datatype, entry["data"]))
        else:
            raise _invalid(field, "has neither data nor binary_data_size")
    if position != len(blobs):
        raise _invalid("body", f"{len(blobs) - position} bytes of binary data belong to no input")
    binary_default = _switch(settings, "binary_data_output", False, "parameters")
    binary: dict[str, bool] = {}
    for entry in _objects(parsed, "outputs"):
        wanted = request.outputs.add(name=str(entry.get("name", "")))
        given = _copy_parameters(
            wanted.parameters, entry.get("parameters"), f"outputs.{wanted.name}.parameters"
        )
        binary[wanted.name] = _switch(
            given, "binary_data", binary_default, f"outputs.{wanted.name}.parameters"
        )
        wanted.parameters["binary_data"].bool_param = True
    request.parameters["binary_data_output"].bool_param = True
    return request, binary, binary_default


def _parameters(params: Any) -> dict[str, Any]:
    return {
        key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in params.items()
    }


def infer_response(response: Any, binary: dict[str, bool], default: bool) -> tuple[bytes, bytes]:
    """Return the JSON header and the binary data (empty when every output is JSON)."""
    outputs, blobs = [], []
    for tensor, data in zip(response.outputs, response.raw_output_contents, strict=True):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": _parameters(tensor.parameters),
        }
        if binary.get(tensor.name, default):
            entry["parameters"]["binary_data_size"] = len(data)
            blobs.append(data)
        else:
            entry["data"] = unpack(tensor.datatype, data, math.prod(tensor.shape))
        outputs.append(entry)
    header = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id:
        header["id"] = response.id
    return json.dumps(header).encode(), b"".join(blobs)


def model_metadata(response: Any) -> dict[str, Any]:
    """The metadata JSON object of the V2 REST API."""

    def tensors(items: Any) -> list[dict[str, Any]]:
        out = []
        for t in items:
            entry = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
            if t.parameters:
                entry["parameters"] = _parameters(t.parameters)
            out.append(entry)
        return out

    return {
        "name": response.name,
        "versions": list(response.versions),
        "platform": response.platform,
        "inputs": tensors(response.inputs),
        "outputs": tensors(response.outputs),
    }
