"""V2 protocol messages <-> Arrow: input tensors to a table, predictions to output tensors.

One input tensor per feature column, named as the column: BYTES (UTF-8) for categorical
columns, a numeric type for numeric ones, shape [n] or [n, 1]. Values come in the typed
`contents` or in `raw_input_contents` (inference.raw). Outputs are "label" and
"probabilities" ([n, classes], FP64, class names in the "classes" parameter).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import inference
import numpy as np
import pyarrow as pa
from inference import raw

from ml_service.domain import FeatureColumn, FeatureKind
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.loaded_model import LoadedModel

LABEL = "label"
PROBABILITIES = "probabilities"
OUTPUTS = (LABEL, PROBABILITIES)

#: Where each datatype's elements sit in InferTensorContents, and their numpy type there.
CONTENTS: dict[str, tuple[str, str]] = {
    "BOOL": ("bool_contents", "?"),
    "INT8": ("int_contents", "<i4"),
    "INT16": ("int_contents", "<i4"),
    "INT32": ("int_contents", "<i4"),
    "INT64": ("int64_contents", "<i8"),
    "UINT8": ("uint_contents", "<u4"),
    "UINT16": ("uint_contents", "<u4"),
    "UINT32": ("uint_contents", "<u4"),
    "UINT64": ("uint64_contents", "<u8"),
    "FP32": ("fp32_contents", "<f4"),
    "FP64": ("fp64_contents", "<f8"),
}
#: Arrow type names (as signatures record them) to V2 datatypes.
DATATYPE_OF_ARROW = {
    "bool": "BOOL",
    **{f"{s}int{b}": f"{s.upper()}INT{b}" for s in ("", "u") for b in (8, 16, 32, 64)},
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "large_string": "BYTES",
}
NUMERIC_HINT = "FP64, FP32, FP16, INT64, INT32 or BOOL"
#: Up to this many rows, BYTES are split and decoded in Python: numpy's set-up costs more.
SMALL = 64


def feature_datatype(feature: FeatureColumn) -> str:
    """The datatype ModelMetadata announces for a feature column."""
    if feature.kind is FeatureKind.CATEGORICAL:
        return "BYTES"
    found = DATATYPE_OF_ARROW.get(feature.arrow_type, "FP64")
    return "FP64" if found == "BYTES" else found


def model_metadata(name: str, model: LoadedModel) -> Any:
    """ModelMetadataResponse: every feature as an input, then label and probabilities.

    `name` is the model's name as the request gave it (its id, or its name when unique), as
    ModelReady and Triton take it: the protocol's metadata `name` is the model name.
    """
    classes = model.signature.classes
    response = inference.ModelMetadataResponse(
        name=name, versions=[str(model.version)], platform=model.kind.name
    )
    for feature in model.signature.features:
        response.inputs.add(name=feature.name, datatype=feature_datatype(feature), shape=[-1])
    label_type = str(model.output_schema.field(0).type)
    response.outputs.add(name=LABEL, datatype=DATATYPE_OF_ARROW[label_type], shape=[-1])
    probabilities = response.outputs.add(
        name=PROBABILITIES, datatype="FP64", shape=[-1, len(classes)]
    )
    probabilities.parameters["classes"].string_param = json.dumps(list(classes))
    return response


def input_table(request: Any, features: Sequence[FeatureColumn]) -> pa.Table:
    """Read the request's input tensors as a table of the model's feature columns."""
    by_name = {f.name: f for f in features}
    raw_contents = request.raw_input_contents
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise InvalidArgument.field(
            "raw_input_contents",
            f"has {len(raw_contents)} entries for {len(request.inputs)} inputs; send one per "
            "input, in the inputs' order, or none",
        )
    problems: list[FieldViolation] = []
    columns: dict[str, pa.Array] = {}
    sent: set[str] = set()
    rows: tuple[int, str] | None = None
    for index, tensor in enumerate(request.inputs):
        name, field = tensor.name, f"inputs.{tensor.name}"
        feature = by_name.get(name)
        if name in sent:
            problems.append(FieldViolation(field, f"input '{name}' is sent more than once"))
            continue
        sent.add(name)
        if feature is None:
            known = ", ".join(f.name for f in features[:20])
            problems.append(
                FieldViolation(field, f"the model has no input '{name}'; its inputs: {known}")
            )
            continue
        problem = _datatype_problem(tensor.datatype, feature)
        shape = list(tensor.shape)
        if problem is None and not (
            len(shape) in (1, 2) and shape[0] >= 0 and shape[1:] in ([], [1])
        ):
            problem = f"input '{name}' has shape {shape}; send [n] or [n, 1] for n rows"
        if problem is None and rows is not None and shape[0] != rows[0]:
            problem = (
                f"input '{name}' has {shape[0]} rows but input '{rows[1]}' has {rows[0]}; "
                "every input needs the same number of rows"
            )
        if problem is None:
            rows = rows or (shape[0], name)
            try:
                columns[name] = _values(tensor, raw_contents[index] if raw_contents else None)
            except raw.RawError as exc:
                problem = f"input '{name}': {exc}"
        if problem is not None:
            problems.append(FieldViolation(field, problem))
    problems += [
        FieldViolation(f"inputs.{f.name}", f"missing input '{f.name}' ({feature_datatype(f)})")
        for f in features
        if f.name not in sent
    ]
    if problems:
        raise InvalidArgument.of(problems)
    return pa.table({f.name: columns[f.name] for f in features})


def _datatype_problem(datatype: str, feature: FeatureColumn) -> str | None:
    if feature.kind is FeatureKind.CATEGORICAL:
        if datatype != "BYTES":
            return (
                f"input '{feature.name}' is categorical: send datatype BYTES (UTF-8 text), "
                f"not {datatype or 'an empty datatype'}"
            )
        return None
    if datatype not in raw.DTYPES:
        return (
            f"input '{feature.name}' is numeric: send datatype {NUMERIC_HINT}, "
            f"not {datatype or 'an empty datatype'}"
        )
    return None


def _values(tensor: Any, raw_data: bytes | None) -> pa.Array:
    count = int(tensor.shape[0])
    datatype = tensor.datatype
    if datatype not in CONTENTS and datatype != "BYTES" and raw_data is None:
        # The protocol has no typed contents for FP16: only raw ones carry it.
        raise raw.RawError(f"{datatype} values travel in raw_input_contents only")
    typed_field, typed_dtype = CONTENTS.get(datatype, ("bytes_contents", ""))
    typed = getattr(tensor.contents, typed_field)
    if raw_data is not None and len(typed):
        raise raw.RawError("send values in contents or in raw_input_contents, not both")
    if datatype == "BYTES":
        return _texts(raw_data, list(typed), count)
    if raw_data is not None:
        dtype = raw.DTYPES[datatype]
        if len(raw_data) != count * dtype.itemsize:
            raise raw.RawError(
                f"raw contents hold {len(raw_data)} bytes; {count} {datatype} values take "
                f"{count * dtype.itemsize}"
            )
        if datatype == "BOOL":
            raw.check_bools(np.frombuffer(raw_data, np.uint8))
        return pa.array(np.frombuffer(raw_data, dtype))
    if len(typed) != count:
        raise raw.RawError(
            f"holds {len(typed)} values in contents.{typed_field}; its shape says {count}"
        )
    values = np.asarray(typed, typed_dtype)
    if values.dtype.kind in "iu" and values.itemsize > raw.DTYPES[datatype].itemsize:
        # int_contents holds INT8s in 32 bits: 300 fits the field but not the datatype.
        raw.check_integers(datatype, values)
    return pa.array(values)


def _texts(raw_data: bytes | None, typed: list[bytes], count: int) -> pa.Array:
    if raw_data is not None and count > SMALL:
        offsets, values = raw.split_bytes(raw_data, count)
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(values)]
        binary = pa.LargeBinaryArray.from_buffers(pa.large_binary(), count, buffers)
        try:
            return binary.cast(pa.large_string())
        except pa.ArrowInvalid as exc:
            raise raw.RawError("holds bytes that are not UTF-8 text") from exc
    items = raw.decode_bytes(raw_data, count) if raw_data is not None else typed
    if len(items) != count:
        raise raw.RawError(f"holds {len(items)} values in contents; its shape says {count}")
    try:
        # A few rows: Python's decode costs less than Arrow's cast kernel.
        return pa.array([item.decode() for item in items], pa.string())
    except UnicodeDecodeError as exc:
        raise raw.RawError("holds bytes that are not UTF-8 text") from exc


def rename_fields(error: InvalidArgument) -> InvalidArgument:
    """Name inputs as V2 clients know them: `columns.x` from the predictor is `inputs.x`."""
    renamed = [
        FieldViolation("inputs" + v.field.removeprefix("columns"), v.description)
        if v.field.startswith("columns.")
        else FieldViolation("inputs" if v.field == "arrow_ipc" else v.field, v.description)
        for v in error.violations
    ]
    return InvalidArgument(error.message.replace("columns.", "inputs."), renamed)


def requested_outputs(request: Any) -> tuple[list[str], bool]:
    """The output names to return, in order, and whether to send them as raw contents."""
    names = [o.name for o in request.outputs] or list(OUTPUTS)
    problems = [
        FieldViolation(f"outputs.{n}", f"no output '{n}'; the outputs are label and probabilities")
        for n in names
        if n not in OUTPUTS
    ]
    # As for inputs sent twice: the same tensor twice in the answer tells the client nothing.
    problems += [
        FieldViolation(f"outputs.{n}", f"output '{n}' is requested more than once")
        for n in dict.fromkeys(names)
        if n in OUTPUTS and names.count(n) > 1
    ]
    if problems:
        raise InvalidArgument.of(problems)
    default = _flag(request.parameters, "binary_data_output", True, "parameters")
    # Raw contents go for all outputs or none, so one output asking for raw gets raw for all.
    binary = any(
        _flag(o.parameters, "binary_data", default, f"outputs.{o.name}.parameters")
        for o in request.outputs
    ) or (not request.outputs and default)
    return names, binary


def _flag(parameters: Any, key: str, default: bool, field: str) -> bool:
    if key not in parameters:
        return default
    kind = parameters[key].WhichOneof("parameter_choice")
    if kind != "bool_param":
        # Read as bool_param, string "true" or int64 1 was false without a word.
        given = kind.removesuffix("_param") if kind else "no value"
        raise InvalidArgument.field(
            f"{field}.{key}", f"must be a bool_param (true or false), not {given}"
        )
    return bool(parameters[key].bool_param)


def infer_response(
    request: Any, model: LoadedModel, predictions: pa.RecordBatch, names: list[str], binary: bool
) -> Any:
    """ModelInferResponse with the requested outputs, as typed or raw contents; the model
    named as the request named it."""
    response = inference.ModelInferResponse(
        model_name=request.model_name, model_version=str(model.version), id=request.id
    )
    rows = predictions.num_rows
    for name in names:
        tensor = response.outputs.add(name=name)
        if name == LABEL:
            labels = predictions.column(0)
            tensor.datatype = DATATYPE_OF_ARROW[str(labels.type)]
            tensor.shape.append(rows)
            data = _label_raw(labels) if binary else _label_typed(labels, tensor)
        else:
            classes = model.signature.classes
            tensor.datatype = "FP64"
            tensor.shape.extend([rows, len(classes)])
            tensor.parameters["classes"].string_param = json.dumps(list(classes))
            matrix = np.column_stack(
                [predictions.column(i).to_numpy() for i in range(1, predictions.num_columns)]
            ).astype("<f8", copy=False)
            if binary:
                data = matrix.tobytes()
            else:
                tensor.contents.fp64_contents.extend(matrix.ravel().tolist())
        if binary:
            response.raw_output_contents.append(data)
    return response


def _label_raw(labels: pa.Array) -> bytes:
    if pa.types.is_string(labels.type) or pa.types.is_large_string(labels.type):
        if len(labels) == 0:
            return b""
        offsets_type = np.int32 if pa.types.is_string(labels.type) else np.int64
        _, offsets_buffer, data_buffer = labels.buffers()
        window = slice(labels.offset, labels.offset + len(labels) + 1)
        offsets = np.frombuffer(offsets_buffer, offsets_type)[window].astype(np.int64)
        text = np.frombuffer(data_buffer or b"", np.uint8)[offsets[0] : offsets[-1]]
        encoded: bytes = raw.encode_bytes(offsets, text)
        return encoded
    dtype = raw.DTYPES[DATATYPE_OF_ARROW[str(labels.type)]]
    numbers: bytes = labels.to_numpy(zero_copy_only=False).astype(dtype, copy=False).tobytes()
    return numbers


def _label_typed(labels: pa.Array, tensor: Any) -> bytes:
    datatype = DATATYPE_OF_ARROW[str(labels.type)]
    if datatype == "BYTES":
        tensor.contents.bytes_contents.extend(s.encode() for s in labels.to_pylist())
    else:
        getattr(tensor.contents, CONTENTS[datatype][0]).extend(labels.to_pylist())
    return b""
