"""Shared by the V2 tests: trained models, the same rows for V2 and mlops.v1, comparisons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import types_pb2 as pb

from mlops_client.ipc import from_ipc, to_ipc
from tests.ml_service.helpers import Client


@dataclass(frozen=True)
class Trained:
    """A model trained for the V2 tests, and rows to ask it about."""

    model_id: str
    name: str
    version: int
    rows: pa.Table
    categorical: tuple[str, ...]


def train(channel: grpc.Channel, table: pa.Table, target: str, name: str) -> Trained:
    """Train a quick CatBoost model and keep 300 feature rows, categorical gaps made ""."""
    job = Client(channel).train(
        table, kind="catboost", target_column=target, hyperparameters={"iterations": 20}, name=name
    )
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    features = table.drop_columns([target]).slice(0, 300)
    categorical = tuple(
        f.name
        for f in features.schema
        if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)
    )
    # BYTES has no missing value; the same "" goes to both protocols.
    for column in categorical:
        index = features.schema.get_field_index(column)
        features = features.set_column(index, column, pc.fill_null(features[column], ""))
    return Trained(job.model_id, name, job.result.version, features, categorical)


def predict_v1(channel: grpc.Channel, model: Trained, rows: pa.Table) -> pa.Table:
    """mlops.v1 Predict on the same rows: the answer V2 must equal."""
    stub = ps_grpc.PredictionServiceStub(channel)
    request = ps.PredictRequest(
        model_id=model.model_id, version=model.version, arrow_ipc=to_ipc(rows)
    )
    return from_ipc(stub.Predict(request, timeout=60).arrow_ipc)


def probabilities(answer: pa.Table) -> np.ndarray[Any, Any]:
    """The proba_ columns of a v1 answer as one [n, classes] matrix."""
    return np.column_stack([answer[c].to_numpy() for c in answer.column_names[1:]])


def column_values(rows: pa.Table, name: str, datatype: str) -> np.ndarray[Any, Any]:
    """One column as the numpy array a tritonclient user would pass for `datatype`."""
    values = rows[name].to_pylist()
    if datatype == "BYTES":
        return np.array([v.encode() for v in values], dtype=np.object_)
    if datatype in ("FP64", "FP32"):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64).astype(
            np.float32 if datatype == "FP32" else np.float64
        )
    return np.array(values, dtype=np.int64 if datatype == "INT64" else np.int32)
