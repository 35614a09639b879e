"""Per-job resources: what a job may ask to reserve, the limits, and the defaults.

The Ray side (an actor really gets the CPUs and memory asked for) is in
test_ray_executor.py; here the rules, which the core checks before any executor is involved.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import grpc
import pyarrow as pa
import pytest
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from ml_service.config import Settings
from ml_service.errors import InvalidArgument
from ml_service.training_contract import TrainingResources, threads_for
from ml_service.training_requests import ResourceRequest, resolve_resources
from tests.conftest import ServiceThread
from tests.ml_service.helpers import Client, violations

LIMITED = {"max_job_cpus": 2.0}


@pytest.fixture
def client(start_service: Any) -> Iterator[Client]:
    """A client of a local-executor service that allows at most 2 CPUs per job."""
    service: ServiceThread = start_service(**LIMITED)
    with grpc.insecure_channel(service.target) as channel:
        yield Client(channel)


def refused(call: Any) -> dict[str, str]:
    """Return the field violations of a call that must be INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return violations(err.value)


@pytest.mark.parametrize(
    ("resources", "field", "words"),
    [
        ({"cpus": 3}, "resources.cpus", "asks for 3 CPUs; this service allows at most 2 per job"),
        ({"cpus": 0}, "resources.cpus", "must be positive, got 0"),
        ({"cpus": -1.5}, "resources.cpus", "must be positive, got -1.5"),
        ({"cpus": math.nan}, "resources.cpus", "must be positive, got nan"),
        ({"memory_mb": 0}, "resources.memory_mb", "must be positive, got 0"),
        (
            {"memory_mb": 512},
            "resources.memory_mb",
            "cannot be reserved: this service trains in local worker processes, which share"
            " the machine's memory (only the Ray executor reserves it)",
        ),
    ],
)
def test_a_bad_resource_request_is_refused_naming_the_field(
    client: Client, penguins: pa.Table, resources: dict[str, Any], field: str, words: str
) -> None:
    found = refused(
        lambda: client.create_job(
            penguins,
            kind="logistic_regression",
            target_column="species",
            resources=pb.TrainingResources(**resources),
        )
    )
    assert found == {field: words}
    # Nothing was queued.
    assert not client.training.ListTrainingJobs(ts.ListTrainingJobsRequest()).jobs


def test_a_resource_problem_is_reported_beside_the_others(
    client: Client, penguins: pa.Table
) -> None:
    found = refused(
        lambda: client.create_job(
            penguins,
            kind="catboost",
            target_column="species",
            hyperparameters={"depth": 40},
            resources=pb.TrainingResources(cpus=9),
        )
    )
    assert set(found) == {"hyperparameters.depth", "resources.cpus"}


def test_a_job_within_the_limit_trains_and_its_retrain_is_checked_too(
    client: Client, penguins: pa.Table
) -> None:
    job = client.train(
        penguins,
        kind="logistic_regression",
        target_column="species",
        resources=pb.TrainingResources(cpus=1.5),
    )
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message

    found = refused(
        lambda: client.retrain(model_id=job.model_id, resources=pb.TrainingResources(cpus=2.5))
    )
    assert found == {"resources.cpus": "asks for 2.5 CPUs; this service allows at most 2 per job"}
    again = client.retrain(model_id=job.model_id, resources=pb.TrainingResources(cpus=1))
    assert client.watch(again.job_id)[-1].state == pb.JOB_STATE_SUCCEEDED


def ray_settings(**overrides: Any) -> Settings:
    """Settings of a service training on Ray (nothing connects to a cluster here)."""
    values: dict[str, Any] = {
        "training_executor": "ray",
        "ray_cpus": 1.0,
        "ray_memory_mb": 256,
        "max_job_cpus": 4.0,
        "max_job_memory_mb": 1024,
        **overrides,
    }
    return Settings(**values)


def test_a_ray_job_takes_the_ray_defaults_for_what_it_leaves_out() -> None:
    settings = ray_settings()
    assert resolve_resources(ResourceRequest(), settings) == TrainingResources(1.0, 256)
    assert resolve_resources(ResourceRequest(cpus=0.5), settings) == TrainingResources(0.5, 256)
    assert resolve_resources(ResourceRequest(memory_mb=1024), settings) == TrainingResources(
        1.0, 1024
    )


def test_a_ray_job_over_the_limits_is_refused_naming_each_field() -> None:
    with pytest.raises(InvalidArgument) as err:
        resolve_resources(ResourceRequest(cpus=16, memory_mb=4096), ray_settings())
    assert {v.field: v.description for v in err.value.violations} == {
        "resources.cpus": "asks for 16 CPUs; this service allows at most 4 per job",
        "resources.memory_mb": "asks for 4096 MiB; this service allows at most 1024 MiB per job",
    }


def test_a_local_job_trains_with_as_many_threads_as_the_cpus_it_asked_for() -> None:
    settings = Settings(max_concurrent_trainings=1)
    resources = resolve_resources(ResourceRequest(cpus=1.5), settings)
    assert resources == TrainingResources(1.5, 0)
    assert threads_for(resources) == 2
