"""A full disk (ENOSPC) or quota (EDQUOT): a clear RESOURCE_EXHAUSTED, nothing half written,
every job reaches a final state its watchers see and a restart reads, and the service goes on.

The fault is injected at the seams where the service writes: the upload's scratch file, the
blob store's `put` (datasets and artifacts) and the metadata's job update.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import types_pb2 as pb

from ml_service import ingest
from ml_service.store.files import BlobStore
from ml_service.store.metadata import Metadata
from tests.ml_service.helpers import Client

SPEC = {"kind": "logistic_regression", "target_column": "species"}
SAVE_FAILED = "no space left to save the model version"


def full(code: int = errno.ENOSPC) -> OSError:
    """The error a write gets on a full disk (ENOSPC) or an exhausted quota (EDQUOT)."""
    return OSError(code, os.strerror(code))


class FullFile:
    """A scratch file that takes a few bytes, then finds the disk full."""

    def __init__(self, path: str, mode: str, code: int) -> None:
        self._file = open(path, mode)  # noqa: SIM115 - closed by __exit__
        self._code = code

    def __enter__(self) -> FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def writelines(self, pieces: list[bytes]) -> None:
        self._file.write(b"partial")
        raise full(self._code)


def fail_puts_under(monkeypatch: pytest.MonkeyPatch, prefix: str, code: int) -> None:
    """Make the blob store's writes of keys under `prefix` fail as on a full disk."""
    real_put = BlobStore.put

    def put(self: BlobStore, local_path: str, key: str, *, synced: bool = False) -> None:
        if key.startswith(prefix):
            raise full(code)
        real_put(self, local_path, key, synced=synced)

    monkeypatch.setattr(BlobStore, "put", put)


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call, or ""."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    for detail in status.details if status is not None else ():
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def leftovers(data_dir: Path) -> list[str]:
    """Files under tmp/, artifacts/ and datasets/: what a failed write must not leave."""
    return sorted(
        str(p.relative_to(data_dir))
        for sub in ("tmp", "artifacts", "datasets")
        for p in (data_dir / sub).rglob("*")
        if p.is_file()
    )


@pytest.mark.parametrize(
    ("seam", "code", "what"),
    [
        ("upload", errno.ENOSPC, "the upload"),
        ("upload", errno.EDQUOT, "the upload"),
        ("dataset", errno.ENOSPC, "the dataset"),
    ],
)
def test_an_upload_on_a_full_disk_is_resource_exhausted_and_leaves_nothing(
    start_service: Any,
    tmp_path: Path,
    penguins: pa.Table,
    monkeypatch: pytest.MonkeyPatch,
    seam: str,
    code: int,
    what: str,
) -> None:
    data_dir = tmp_path / "store"
    service = start_service(data_dir)
    if seam == "upload":
        monkeypatch.setattr(ingest, "open", lambda p, m: FullFile(p, m, code), raising=False)
    else:
        fail_puts_under(monkeypatch, "datasets/", code)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        with pytest.raises(grpc.RpcError) as caught:
            client.create_job(penguins, **SPEC)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caught.value.details() == f"no space left for {what}"
        assert reason_of(caught.value) == "NO_SPACE"
        assert leftovers(data_dir) == []
        assert not client.training.ListTrainingJobs(ts.ListTrainingJobsRequest()).jobs
        # Space freed: the same upload trains.
        monkeypatch.undo()
        assert client.train(penguins, **SPEC).state == pb.JOB_STATE_SUCCEEDED


def test_a_model_that_cannot_be_saved_fails_its_job_for_every_watcher_and_after_a_restart(
    start_service: Any, tmp_path: Path, penguins: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "store"
    service = start_service(data_dir)
    fail_puts_under(monkeypatch, "artifacts/", errno.ENOSPC)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        job = client.create_job(penguins, **SPEC)
        updates = client.watch(job.job_id, timeout=120)
        final = updates[-1]
        assert final.state == pb.JOB_STATE_FAILED
        assert (final.error.code, final.error.message) == ("RESOURCE_EXHAUSTED", SAVE_FAILED)
        assert not client.models.ListModels(ms.ListModelsRequest()).models
        # The scratch artifact is gone; only the uploaded dataset is kept.
        assert [p for p in leftovers(data_dir) if not p.startswith("datasets/")] == []
    service.stop()
    monkeypatch.undo()

    restarted = start_service(data_dir)
    with grpc.insecure_channel(restarted.target) as channel:
        client = Client(channel)
        request = ts.GetTrainingJobRequest(job_id=job.job_id)
        stored = client.training.GetTrainingJob(request).job
        assert stored.state == pb.JOB_STATE_FAILED
        assert stored.error.message == SAVE_FAILED
        assert client.train(penguins, **SPEC).state == pb.JOB_STATE_SUCCEEDED


@pytest.mark.parametrize("frees", ["after two tries", "before the stop"])
def test_a_job_whose_final_row_cannot_be_written_still_ends_for_its_watchers(
    start_service: Any,
    tmp_path: Path,
    penguins: pa.Table,
    monkeypatch: pytest.MonkeyPatch,
    frees: str,
) -> None:
    data_dir = tmp_path / "store"
    service = start_service(data_dir)
    fail_puts_under(monkeypatch, "artifacts/", errno.ENOSPC)
    real_update = Metadata.update_job
    refused: list[str] = []

    def update_job(self: Metadata, job: Any) -> None:
        if job.state.is_final and (frees == "before the stop" or len(refused) < 2):
            refused.append(job.job_id)
            raise full()
        real_update(self, job)

    monkeypatch.setattr(Metadata, "update_job", update_job)
    with grpc.insecure_channel(service.target) as channel:
        client = Client(channel)
        job = client.create_job(penguins, **SPEC)
        final = client.watch(job.job_id, timeout=60)[-1]
        assert final.state == pb.JOB_STATE_FAILED and final.error.message == SAVE_FAILED
        request = ts.GetTrainingJobRequest(job_id=job.job_id)
        assert client.training.GetTrainingJob(request).job.state == pb.JOB_STATE_FAILED
        assert client.models.ListModels(ms.ListModelsRequest()) is not None
    assert refused
    monkeypatch.undo()
    service.stop()

    restarted = start_service(data_dir)
    with grpc.insecure_channel(restarted.target) as channel:
        stored = Client(channel).training.GetTrainingJob(request).job
        assert stored.state == pb.JOB_STATE_FAILED
        assert stored.error.message == SAVE_FAILED  # not "interrupted by a server restart"
