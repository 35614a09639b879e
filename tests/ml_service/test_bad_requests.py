"""Every bad training request gets INVALID_ARGUMENT naming the problem; nothing is stored."""

from __future__ import annotations

from typing import Any

import grpc
import pyarrow as pa
import pytest
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import training_service_pb2 as ts

from tests.ml_service.helpers import Client, violations


@pytest.fixture
def client(channel: grpc.Channel) -> Client:
    return Client(channel)


def invalid(client: Client, table: pa.Table | None, **spec: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        client.create_job(table, **spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return err.value


@pytest.mark.parametrize(
    ("kind", "params", "field", "words"),
    [
        ("catboost", {"iterationz": 10}, "hyperparameters.iterationz", "unknown"),
        ("catboost", {"iterations": "ten"}, "hyperparameters.iterations", "integer"),
        ("catboost", {"iterations": 2.5}, "hyperparameters.iterations", "integer"),
        ("catboost", {"iterations": 0}, "hyperparameters.iterations", "at least"),
        ("catboost", {"learning_rate": 5}, "hyperparameters.learning_rate", "at most"),
        ("catboost", {"depth": 40}, "hyperparameters.depth", "at most"),
        ("catboost", {"verbose": "yes"}, "hyperparameters.verbose", "boolean"),
        ("logistic_regression", {"C": -1}, "hyperparameters.C", "at least 1e-10"),
        ("logistic_regression", {"solver": "adam"}, "hyperparameters.solver", "one of"),
        ("logistic_regression", {"max_iter": True}, "hyperparameters.max_iter", "integer"),
    ],
)
def test_bad_hyperparameter_names_the_field(
    client: Client, penguins: pa.Table, kind: str, params: dict[str, Any], field: str, words: str
) -> None:
    error = invalid(client, penguins, kind=kind, target_column="species", hyperparameters=params)
    found = violations(error)
    assert list(found) == [field]
    assert words in found[field].lower()


def test_each_problem_is_its_own_violation(client: Client, penguins: pa.Table) -> None:
    error = invalid(
        client,
        penguins,
        kind="catboost",
        target_column="species",
        hyperparameters={"iterations": -1, "depth": "deep", "nope": 1},
        holdout_fraction=2.0,
    )
    assert set(violations(error)) == {
        "hyperparameters.iterations",
        "hyperparameters.depth",
        "hyperparameters.nope",
        "holdout_fraction",
    }


def test_solver_penalty_combination_is_refused(client: Client, penguins: pa.Table) -> None:
    error = invalid(
        client,
        penguins,
        kind="logistic_regression",
        target_column="species",
        hyperparameters={"solver": "lbfgs", "penalty": "l1"},
    )
    found = violations(error)
    assert found and all(f.startswith("hyperparameters.") for f in found)
    assert "lbfgs" in " ".join(found.values())


def test_unknown_kind(client: Client, penguins: pa.Table) -> None:
    error = invalid(client, penguins, kind="xgboost", target_column="species")
    assert "xgboost" in violations(error)["kind"]


def column(name: str, values: list[Any], type_: pa.DataType | None = None) -> pa.Table:
    return pa.table({name: pa.array(values, type=type_)})


def with_target(target: pa.Array) -> pa.Table:
    n = len(target)
    return pa.table({"x": pa.array([float(i) for i in range(n)]), "y": target})


@pytest.mark.parametrize(
    ("table", "spec", "words"),
    [
        (with_target(pa.array([], pa.string())), {}, "no rows"),
        (with_target(pa.array(["a", "b"] * 10)).drop_columns(["y"]), {}, "target"),
        (with_target(pa.array(["a"] * 20)), {}, "one class"),
        (with_target(pa.array(["a", None] * 10)), {}, "missing"),
        (with_target(pa.array([0.0, float("nan")] * 10)), {}, "nan"),
        (with_target(pa.array([0.0, float("inf")] * 10)), {}, "inf"),
        (with_target(pa.array(["a", "b"] * 10)), {"feature_columns": ["x", "y"]}, "target"),
        (with_target(pa.array(["a", "b"] * 10)), {"feature_columns": ["z"]}, "z"),
    ],
    ids=[
        "empty",
        "missing-target",
        "single-class",
        "null-target",
        "nan-target",
        "inf-target",
        "target-as-feature",
        "unknown-feature",
    ],
)
def test_bad_data(client: Client, table: pa.Table, spec: dict[str, Any], words: str) -> None:
    error = invalid(client, table, kind="logistic_regression", target_column="y", **spec)
    assert words in error.details().lower()
    assert client.models.ListModels(ms.ListModelsRequest()).models == []


def test_all_null_feature_column_is_named(client: Client) -> None:
    table = with_target(pa.array(["a", "b"] * 10)).append_column(
        "empty", pa.array([None] * 20, pa.float64())
    )
    error = invalid(client, table, kind="catboost", target_column="y")
    assert "empty" in error.details()


def test_garbage_arrow_is_refused(client: Client) -> None:
    first = ts.CreateTrainingJobRequest(
        spec={"kind": "catboost", "target_column": "y"}  # type: ignore[arg-type]
    )
    junk = ts.CreateTrainingJobRequest(arrow_chunk=b"\x00not arrow at all" * 100)
    with pytest.raises(grpc.RpcError) as err:
        client.training.CreateTrainingJob(iter([first, junk]), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "arrow" in err.value.details().lower()


def test_spec_must_come_first(client: Client) -> None:
    junk = ts.CreateTrainingJobRequest(arrow_chunk=b"abc")
    with pytest.raises(grpc.RpcError) as err:
        client.training.CreateTrainingJob(iter([junk]), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec" in violations(err.value)


def test_not_found_names_the_id(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.training.GetTrainingJob(ts.GetTrainingJobRequest(job_id="j-000000000000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "j-000000000000" in err.value.details()
