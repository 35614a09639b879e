"""What a long-running service must not accumulate: resources of jobs that have ended."""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pyarrow as pa
import pytest
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from tests.ml_service.helpers import Client


@pytest.fixture
def client(start_service: Any) -> Iterator[Client]:
    """A client of a service that trains in local worker processes (in this process)."""
    service = start_service()
    with grpc.insecure_channel(service.target) as channel:
        yield Client(channel)


def open_pipes() -> int:
    """Pipes this process holds open (the service runs in a thread of it)."""
    fds = os.listdir("/proc/self/fd")
    return sum(1 for fd in fds if _target(fd).startswith("pipe:"))


def settled_pipes() -> int:
    """Open pipes once the count holds still for a second: a job's final state is answered
    before its dispatcher lets go of the worker, and a cancel before the worker is gone."""
    count, deadline = open_pipes(), time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(1)
        gc.collect()  # what earlier tests left behind closes its pipes when collected
        # multiprocessing holds the last ended worker until the next start; that one is not
        # the service's to let go.
        multiprocessing.active_children()
        count, previous = open_pipes(), count
        if count == previous:
            break
    return count


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # the listing's own descriptor, closed by now
        return ""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_ended_jobs_keep_no_pipes_to_their_workers(client: Client, penguins: pa.Table) -> None:
    spec = {"kind": "logistic_regression", "target_column": "species"}
    client.train(penguins, **spec)  # starts the forkserver, whose own pipes stay
    before = settled_pipes()
    for _ in range(4):
        assert client.train(penguins, **spec).state == pb.JOB_STATE_SUCCEEDED
    slow = client.create_job(
        penguins, kind="catboost", target_column="species", hyperparameters={"iterations": 10000}
    )
    client.training.CancelTrainingJob(ts.CancelTrainingJobRequest(job_id=slow.job_id))
    assert client.watch(slow.job_id)[-1].state == pb.JOB_STATE_CANCELLED
    # Ended jobs stay readable for a while (hundreds of them); each held two pipes.
    assert settled_pipes() == before
