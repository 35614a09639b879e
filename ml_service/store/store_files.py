"""The store's files: scratch paths, datasets by digest, artifacts checked on load, and
the sweep of files no row references."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from pathlib import Path

from ml_service.domain import VersionRecord
from ml_service.errors import NotFound
from ml_service.store.errors import ArtifactCorrupted, ObjectStoreUnavailable
from ml_service.store.files import BlobStore, sha256_file
from ml_service.store.metadata import Metadata
from ml_service.store.observe import Observe, operation
from ml_service.store.space import space_for
from ml_service.store.sweep import SweepReport, dataset_key, sweep_orphans

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"[0-9a-f]{64}")


class StoreFiles:
    """Scratch files, datasets and artifacts of a store (the part of Store on files)."""

    _tmp: Path
    _metadata: Metadata
    _blobs: BlobStore
    observe: Observe

    def scratch_path(self, suffix: str = "") -> str:
        """Return a fresh local path under tmp/ to write an upload or artifact to."""
        if "/" in suffix or os.sep in suffix:
            raise ValueError(f"suffix {suffix!r} must not contain a path separator")
        return str(self._tmp / f"{uuid.uuid4().hex}{suffix}")

    @operation
    def put_dataset(self, local_parquet_path: str) -> str:
        """Move a Parquet file into the dataset store and return its sha256 digest."""
        digest, _ = sha256_file(local_parquet_path)
        key = dataset_key(digest)
        if self._blobs.exists(key):
            os.unlink(local_parquet_path)  # same bytes are already stored
        else:
            with space_for("the dataset"):
                self._blobs.put(local_parquet_path, key)
        return digest

    def release_dataset(self, path: str) -> None:
        """Delete the private copy dataset_path made; the stored file itself stays."""
        if Path(path).parent == self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def dataset_path(self, digest: str) -> str:
        """Return a local path to read a stored dataset from (a private copy under tmp/
        on other filesystems than local disk; release_dataset deletes it)."""
        key = dataset_key(digest)
        if not _DIGEST.fullmatch(digest) or not self._blobs.exists(key):
            raise NotFound(f"dataset {digest!r} not found")
        if self._blobs.is_local:
            return self._blobs.path(key)
        path = self.scratch_path(".parquet")
        self._blobs.fetch(key, path)
        return path

    @operation
    def open_artifact(self, version: VersionRecord) -> str:
        """Return a local path to a version's artifact after checking its sha256.

        On local disk this is the stored file itself; on other filesystems it is a private
        copy under tmp/ that the caller may delete once loaded.
        """
        what = f"model {version.model_id!r} version {version.version}"
        try:
            if self._blobs.is_local:
                path = self._blobs.path(version.artifact_key)
                sha256, _ = sha256_file(path)
            else:
                path = self.scratch_path(Path(version.artifact_key).suffix)
                sha256, _ = self._blobs.fetch(version.artifact_key, path)
        except FileNotFoundError:
            # A delete may have raced this load; then the version is simply gone (NotFound).
            self._metadata.get_version(version.model_id, version.version)
            log.error("artifact %s of %s is missing", version.artifact_key, what)
            raise ArtifactCorrupted(f"the stored artifact of {what} is missing") from None
        if sha256 != version.training.artifact_sha256:
            log.error("artifact %s of %s has sha256 %s", version.artifact_key, what, sha256)
            if not self._blobs.is_local:
                os.unlink(path)
            raise ArtifactCorrupted(
                f"the stored artifact of {what} is corrupted: its sha256 does not match "
                f"the recorded {version.training.artifact_sha256[:12]}..."
            )
        return path

    @operation
    def sweep_orphans(self, grace_seconds: float) -> SweepReport:
        """Delete stored artifacts and datasets no row references, once older than the grace."""
        return sweep_orphans(self._blobs, self._referenced, grace_seconds)

    def _referenced(self) -> tuple[set[str], set[str]]:
        return self._metadata.artifact_keys(), self._metadata.dataset_digests()

    def _discard(self, keys: list[str]) -> None:
        # Rows are already gone, so the request has succeeded; a file we fail to delete is an
        # orphan the next start-up sweep removes.
        for key in keys:
            try:
                self._blobs.delete(key)
            except (OSError, ObjectStoreUnavailable):
                log.warning("could not delete %s; the next sweep will", key, exc_info=True)
