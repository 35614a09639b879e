"""Opening a store's parts: the data directory's lock, the blob store and the metadata
database, with an embedded store's interrupted jobs failed and leftovers swept."""

from __future__ import annotations

import fcntl
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.fs as pafs

from ml_service.domain import JobError
from ml_service.store.errors import StoreInUse
from ml_service.store.files import BlobStore, filesystem_for
from ml_service.store.metadata import Metadata
from ml_service.store.sweep import ARTIFACTS, DATASETS, sweep

log = logging.getLogger(__name__)

INTERRUPTED = JobError("ABORTED", "interrupted by a server restart")
ONE_EACH = "give each replica a data directory of its own (MLOPS_DATA_DIR)"


def open_parts(
    root: Path,
    filesystem: pafs.FileSystem | None,
    base_path: str,
    database_url: str,
    artifact_uri: str,
) -> tuple[Metadata, BlobStore, int]:
    """Lock `root`, open the blob store and the database, and sweep; see Store.open."""
    make_data_dir(root)
    lock_fd = lock_data_dir(root)
    try:
        if artifact_uri:
            filesystem, base_path = filesystem_for(artifact_uri)
        if filesystem is None:
            filesystem = pafs.LocalFileSystem()
        if not base_path and isinstance(filesystem, pafs.LocalFileSystem):
            base_path = str(root)
        blobs = BlobStore(filesystem, base_path)
        blobs.create_dirs(ARTIFACTS, DATASETS)
        metadata = Metadata(database_url or root / "metadata.sqlite")
        try:
            if metadata.dialect == "sqlite":
                # Only this process uses an embedded store, so whatever is unfinished was
                # left by the last one. A shared database has other replicas' live jobs
                # and files in flight: neither their jobs nor their files are ours to end.
                failed = metadata.fail_interrupted_jobs(datetime.now(UTC), INTERRUPTED)
                if failed:
                    log.warning("jobs interrupted by a restart, marked failed: %d", failed)
            if metadata.dialect == "sqlite" and blobs.is_local:
                sweep(blobs, root / "tmp", metadata.artifact_keys(), metadata.dataset_digests())
            else:
                # A bucket may be shared even when this database is not: a replica whose
                # MLOPS_DATABASE_URL is missing has SQLite of its own, which references none
                # of the other replicas' files. An orphan left in a bucket costs space;
                # sweeping it would delete every committed model there.
                sweep(blobs, root / "tmp", None, None)
        except BaseException:
            metadata.close()
            raise
    except BaseException:
        os.close(lock_fd)
        raise
    return metadata, blobs, lock_fd


def make_data_dir(root: Path) -> None:
    """Create the data directory and its scratch space; refuse one that cannot be, by name."""
    try:
        (root / "tmp").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # Said "[Errno 20] Not a directory: '/srv/models/tmp'", naming neither the setting
        # nor the directory the operator gave.
        reason = error.strerror.lower() if error.strerror else str(error)
        raise OSError(
            f"the data directory {root} (MLOPS_DATA_DIR, --data-dir) cannot be used: {reason}"
        ) from None


def lock_data_dir(root: Path, advice: str = ONE_EACH) -> int:
    """Take the data directory's exclusive lock, so two processes never share it; return it.

    `advice` ends the refusal when another process holds it: what to do instead.
    """
    # The sweep deletes whatever has no row yet; a second process would delete the first
    # one's uploads and artifacts in flight.
    fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreInUse(
            f"data directory {str(root)!r} is in use by another process; {advice}"
        ) from None
    return fd
