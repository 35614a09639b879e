"""What runs inside a Ray worker process: one training actor per job.

The actor is a plain class here (the executor wraps it with `ray.remote`), so this module
needs no Ray to import. It gets the TrainingTask as JSON text and answers JSON text, so
nothing a request can reach is pickled. With an object store, the task names the dataset
and the artifact by URI: the actor copies the data to its own scratch directory, trains
exactly as a local worker does (worker.run_task) and uploads the artifact where it was told.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from ml_service import training_contract
from ml_service.domain import Progress
from ml_service.store.files import BlobStore, filesystem_for
from ml_service.worker import plain_message, run_task


def is_uri(location: str) -> bool:
    """Tell whether a location is an object store URI rather than a local path."""
    return "://" in location


def blobs_at(uri: str) -> tuple[BlobStore, str]:
    """Return a blob store over the URI's filesystem and the URI's path in it."""
    filesystem, path = filesystem_for(uri)
    return BlobStore(filesystem, ""), path


class TrainingActor:
    """Train one task; answer progress questions from another thread meanwhile.

    The executor creates it with max_concurrency 2: `run` holds one thread for the whole
    fit while `progress`, `pid` and `assigned_resources` are answered on the other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: dict[str, Any] | None = None

    def pid(self) -> int:
        """Return this worker's process id (a started actor answers at once)."""
        return os.getpid()

    def assigned_resources(self) -> dict[str, float]:
        """Return what Ray reserved for this actor, e.g. {"CPU": 2.0, "memory": 536870912.0}."""
        import ray  # this runs in a Ray worker, where Ray is there by definition

        context = ray.get_runtime_context()
        return dict(context.get_assigned_resources())  # type: ignore[no-untyped-call]

    def progress(self) -> str:
        """Return the latest progress as JSON text ("null" before the first report)."""
        with self._lock:
            return json.dumps(self._progress)

    def run(self, payload: str) -> str:
        """Train the encoded task; return the encoded final message (result or error)."""
        task = training_contract.decode_task(payload)
        with tempfile.TemporaryDirectory(prefix="mlops-ray-") as scratch:
            local = task
            try:
                if is_uri(task.dataset_path):
                    local = dataclasses.replace(local, dataset_path=f"{scratch}/data.parquet")
                    blobs, path = blobs_at(task.dataset_path)
                    blobs.fetch(path, local.dataset_path)
                if is_uri(task.artifact_path):
                    suffix = Path(blobs_at(task.artifact_path)[1]).suffix
                    local = dataclasses.replace(local, artifact_path=f"{scratch}/model{suffix}")
            except OSError as exc:
                return _unavailable("read the training data from", exc)
            message = run_task(training_contract.encode(local), self._report)
            if message["type"] == "result" and local.artifact_path != task.artifact_path:
                try:
                    blobs, path = blobs_at(task.artifact_path)
                    blobs.put(local.artifact_path, path, synced=True)
                except OSError as exc:
                    return _unavailable("write the model artifact to", exc)
        return json.dumps(message)

    def _report(self, progress: Progress) -> None:
        with self._lock:
            self._progress = dataclasses.asdict(progress)


def _unavailable(what: str, exc: OSError) -> str:
    message = f"the Ray worker could not {what} the object store: {plain_message(exc)}"
    return json.dumps({"type": "error", "code": "UNAVAILABLE", "message": message})
