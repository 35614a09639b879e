"""Durable store: metadata in SQL, artifacts and datasets through pyarrow.fs.

Embedded (the default), a data directory holds everything:

    metadata.sqlite                          models, versions, jobs (WAL); a row commits
    lock                                     held by the one process that has the store open
    artifacts/<model_id>/<version>-<sha8><ext>
    datasets/<sha256>.parquet                training data, addressed by content
    tmp/                                     scratch files; emptied on every open

Shared, the metadata lives in PostgreSQL (a database URL) and artifacts and datasets under
the same keys in an object store (an artifact URI such as s3://bucket/prefix); the data
directory keeps only lock and tmp/, and any number of replicas share the rest.
"""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import pyarrow.fs as pafs
from mlops import names

from ml_service.domain import JobRecord, ModelRecord, VersionRecord
from ml_service.errors import InvalidArgument
from ml_service.store.errors import (
    ArtifactCorrupted,
    DatabaseUnavailable,
    ObjectStoreUnavailable,
    StoreInUse,
    StoreRefused,
    StoreUnreachable,
)
from ml_service.store.files import BlobStore
from ml_service.store.metadata import Metadata
from ml_service.store.observe import Observe, operation, unobserved
from ml_service.store.opening import open_parts
from ml_service.store.paging import decode_token, encode_token, page_limit
from ml_service.store.shared import SharedRows
from ml_service.store.space import space_for
from ml_service.store.store_files import StoreFiles
from ml_service.store.sweep import ARTIFACTS

__all__ = [
    "ArtifactCorrupted",
    "DatabaseUnavailable",
    "ObjectStoreUnavailable",
    "Store",
    "StoreInUse",
    "StoreRefused",
    "StoreUnreachable",
]


# Ids become path segments of artifact keys, so they must not be able to climb out.
_ID = re.compile(names.ID_PATTERN)
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}")


class Store(StoreFiles):
    """Models, versions, jobs, artifacts and datasets of one service instance."""

    def __init__(self, data_dir: Path, metadata: Metadata, blobs: BlobStore, lock_fd: int) -> None:
        self.data_dir = data_dir
        self._tmp = data_dir / "tmp"
        self._metadata = metadata
        self._blobs = blobs
        self._lock_fd = lock_fd
        #: Wraps every operation below; the core sets it to time and trace them.
        self.observe: Observe = unobserved
        # What replicas coordinate through; an embedded store has no other replica.
        self.shared = SharedRows(metadata) if metadata.dialect != "sqlite" else None

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        filesystem: pafs.FileSystem | None = None,
        base_path: str = "",
        *,
        database_url: str = "",
        artifact_uri: str = "",
    ) -> Store:
        """Open (creating if needed) a store, fail interrupted jobs and sweep leftovers.

        `database_url` ("" = metadata.sqlite in `data_dir`) names the metadata database;
        `artifact_uri` ("" = `data_dir`), or `filesystem` and `base_path`, place artifacts
        and datasets, e.g. in an S3 bucket under a prefix.
        """
        root = Path(data_dir).resolve()
        metadata, blobs, lock_fd = open_parts(
            root, filesystem, base_path, database_url, artifact_uri
        )
        return cls(root, metadata, blobs, lock_fd)

    def close(self) -> None:
        """Close the database and let another process open the directory; repeats are no-ops."""
        if self._lock_fd < 0:
            return
        self._metadata.close()
        os.close(self._lock_fd)
        self._lock_fd = -1

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ping(self) -> None:
        """Reach the metadata database once; raise DatabaseUnavailable when it cannot be."""
        self._metadata.ping()

    # Models and versions

    @operation
    def commit_version(
        self,
        record: VersionRecord,
        artifact_local_path: str,
        name: str = "",
        description: str = "",
        owner: str | None = None,
    ) -> VersionRecord:
        """Number a new version, move its artifact into place and record it, all or nothing.

        `record` is a version not yet committed (version 0, no artifact key) whose training
        result carries the artifact's sha256 and size as the worker wrote it; the file is
        consumed. Its parent_version 0 creates the model with `name` and `description`;
        a positive one adds a version to the existing model, whose kind must match. When
        the record's job is still queued or running, it is marked succeeded in the same
        transaction. With `owner` (shared mode), the version commits only while that
        replica still holds the running job's lease; otherwise LeaseLost, and the artifact
        is deleted again (or left to the orphan sweep).
        """
        if not _ID.fullmatch(record.model_id):
            raise InvalidArgument.field("model_id", f"{record.model_id!r} is not a valid id")
        trained = record.training
        # The worker hashed and synced the file; hashing it again here would double the
        # work. A changed size is caught now, changed bytes on every load (open_artifact).
        size = os.path.getsize(artifact_local_path)
        if size != trained.artifact_size:
            raise ArtifactCorrupted(
                f"the trained artifact has {size} bytes, not the {trained.artifact_size} "
                "the training reported"
            )
        suffix = Path(artifact_local_path).suffix
        suffix = suffix if _SUFFIX.fullmatch(suffix) else ""
        with space_for("the model version's record"):
            version = self._metadata.allocate_version(record.model_id)
        key = f"{ARTIFACTS}/{record.model_id}/{version}-{trained.artifact_sha256[:8]}{suffix}"
        record = dataclasses.replace(
            record, version=version, created_at=datetime.now(UTC), artifact_key=key
        )
        # File first, row second: a crash in between leaves a file no row points at, which the
        # next sweep deletes; the reverse order could leave a row pointing at nothing.
        with space_for("the model artifact"):
            self._blobs.put(artifact_local_path, key, synced=True)
        try:
            with space_for("the model version's record"):
                self._metadata.insert_version(record, name, description, owner)
        except BaseException:
            self._discard([key])
            raise
        return record

    @operation
    def get_model(self, model_id: str) -> ModelRecord:
        """Return a model."""
        return self._metadata.get_model(model_id)

    @operation
    def list_models(self, page_size: int, page_token: str) -> tuple[list[ModelRecord], str]:
        """Return one page of models, newest first, and the next page's token ("" at the end)."""
        limit = page_limit(page_size)
        rows = self._metadata.list_models(limit + 1, decode_token(page_token, "models"))
        page = rows[:limit]
        more = len(rows) > limit
        return [m for _, m in page], encode_token("models", page[-1][0]) if more else ""

    @operation
    def get_version(self, model_id: str, version: int) -> VersionRecord:
        """Return a version of a model; version 0 means the latest."""
        return self._metadata.get_version(model_id, version)

    @operation
    def list_versions(
        self, model_id: str, page_size: int, page_token: str
    ) -> tuple[list[VersionRecord], str]:
        """Return one page of a model's versions, newest first, and the next page's token."""
        scope = f"versions/{model_id}"
        limit = page_limit(page_size)
        rows = self._metadata.list_versions(model_id, limit + 1, decode_token(page_token, scope))
        page = rows[:limit]
        more = len(rows) > limit
        return page, encode_token(scope, page[-1].version) if more else ""

    @operation
    def delete_model(self, model_id: str) -> int:
        """Delete a model with all its versions and artifacts; return how many versions."""
        keys = self._metadata.delete_model(model_id)
        self._discard(keys)
        self._blobs.remove_empty_dir(f"{ARTIFACTS}/{model_id}")
        return len(keys)

    @operation
    def delete_version(self, model_id: str, version: int) -> bool:
        """Delete one version; return True when it was the last, so the model went too."""
        if version <= 0:
            raise InvalidArgument.field("version", "must be 1 or more")
        key, model_deleted = self._metadata.delete_version(model_id, version)
        self._discard([key])
        if model_deleted:
            self._blobs.remove_empty_dir(f"{ARTIFACTS}/{model_id}")
        return model_deleted

    # Jobs

    @operation
    def insert_job(self, job: JobRecord, max_queued: int | None = None) -> None:
        """Store a new job; with `max_queued`, refuse it when that many jobs already wait."""
        with space_for("the training job"):
            self._metadata.insert_job(job, max_queued)

    @operation
    def update_job(self, job: JobRecord) -> None:
        """Overwrite a stored job with this record."""
        with space_for("the training job's state"):
            self._metadata.update_job(job)

    @operation
    def get_job(self, job_id: str) -> JobRecord:
        """Return a stored job."""
        return self._metadata.get_job(job_id)

    @operation
    def list_jobs(
        self, page_size: int, page_token: str, model_id: str = ""
    ) -> tuple[list[JobRecord], str]:
        """Return one page of jobs, newest first, optionally of one model, and the next token."""
        scope = f"jobs/{model_id}"
        limit = page_limit(page_size)
        rows = self._metadata.list_jobs(limit + 1, decode_token(page_token, scope), model_id)
        page = rows[:limit]
        more = len(rows) > limit
        return [j for _, j in page], encode_token(scope, page[-1][0]) if more else ""
