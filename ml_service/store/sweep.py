"""Sweeps: delete what no metadata row points at.

Embedded on local disk, the store sweeps once when it opens, before anything else can
write; a bucket may hold files of replicas this database does not know, so opening never
sweeps one. Shared, other replicas write all the time, and a file is written before its
row: the orphan sweep only deletes files older than a grace period, far longer than any
commit takes.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from ml_service.store.files import BlobStore

log = logging.getLogger(__name__)

ARTIFACTS = "artifacts"
DATASETS = "datasets"


def dataset_key(digest: str) -> str:
    """Return the key of the dataset with a sha256 digest."""
    return f"{DATASETS}/{digest}.parquet"


@dataclass(frozen=True)
class SweepReport:
    """What a sweep deleted."""

    tmp_entries: int
    artifacts: int
    datasets: int


def sweep(
    blobs: BlobStore,
    tmp_dir: Path,
    artifact_keys: Collection[str] | None,
    dataset_digests: Collection[str] | None,
) -> SweepReport:
    """Empty tmp/ and delete artifacts and datasets that are not in the given sets.

    None for both sets leaves the blobs alone (shared mode: other replicas write there).
    """
    # Only safe while nothing else runs: a file is written before its row, so a sweep racing a
    # commit would delete the file of a version about to exist. The store runs it in open().
    tmp_entries = _empty_dir(tmp_dir)
    artifacts = datasets = 0
    if artifact_keys is not None and dataset_digests is not None:
        artifacts = _sweep_prefix(blobs, ARTIFACTS, set(artifact_keys))
        datasets = _sweep_prefix(blobs, DATASETS, {dataset_key(d) for d in dataset_digests})
    report = SweepReport(tmp_entries, artifacts, datasets)
    if tmp_entries or artifacts or datasets:
        log.info(
            "sweep deleted %d tmp entries, %d orphan artifacts, %d unreferenced datasets",
            tmp_entries,
            artifacts,
            datasets,
        )
    return report


def _empty_dir(path: Path) -> int:
    count = 0
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        count += 1
    return count


def _sweep_prefix(blobs: BlobStore, prefix: str, keep: set[str]) -> int:
    files, dirs = blobs.list(prefix)
    deleted = 0
    for key in files:
        if key not in keep:
            blobs.delete(key)
            deleted += 1
    # Drop directories left empty, e.g. artifacts/<model_id>/ of a deleted model.
    kept_dirs = {key.rsplit("/", n)[0] for key in keep for n in range(1, key.count("/") + 1)}
    for directory in sorted(dirs, key=len, reverse=True):
        if directory not in kept_dirs:
            blobs.delete_dir(directory)
    return deleted


def sweep_orphans(
    blobs: BlobStore,
    referenced: Callable[[], tuple[Collection[str], Collection[str]]],
    grace_seconds: float,
) -> SweepReport:
    """Delete artifacts and datasets older than `grace_seconds` that no row references.

    `referenced` returns the artifact keys and dataset digests rows point at; it is read
    after listing, so a row committed meanwhile still protects its file.
    """
    cutoff = time.time_ns() - int(grace_seconds * 1e9)
    old_artifacts = blobs.files_older_than(ARTIFACTS, cutoff)
    old_datasets = blobs.files_older_than(DATASETS, cutoff)
    artifact_keys, digests = referenced()
    keep = set(artifact_keys) | {dataset_key(d) for d in digests}
    artifacts = datasets = 0
    for key in old_artifacts + old_datasets:
        if key not in keep:
            blobs.delete(key)
            if key.startswith(f"{ARTIFACTS}/"):
                artifacts += 1
            else:
                datasets += 1
    if artifacts or datasets:
        log.info("orphan sweep deleted %d artifacts and %d datasets", artifacts, datasets)
    return SweepReport(0, artifacts, datasets)
