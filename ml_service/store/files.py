"""Blob storage for artifacts and datasets through pyarrow.fs, with atomic local writes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from ml_service.store.outages import object_store_reached

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> tuple[str, int]:
    """Return the sha256 hex digest and the size in bytes of a local file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def fsync_file(path: str | Path) -> None:
    """Flush a file's contents to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries, so a rename or unlink in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Files named by relative keys such as `artifacts/m-1/3-ab12cd34.cbm` under a base path."""

    def __init__(self, filesystem: pafs.FileSystem, base: str) -> None:
        self.filesystem = filesystem
        self.base = base.rstrip("/")
        # On local disk we rename in place and verify without copying; elsewhere we stream.
        self.is_local = isinstance(filesystem, pafs.LocalFileSystem)
        #: How errors name this store, e.g. "s3://bucket/prefix".
        self.name = f"{filesystem.type_name}://{self.base}"

    def _reached(self) -> contextlib.AbstractContextManager[None]:
        """Report a remote store that does not answer as ObjectStoreUnavailable."""
        return contextlib.nullcontext() if self.is_local else object_store_reached(self.name)

    def path(self, key: str) -> str:
        """Return the filesystem path of a key."""
        return f"{self.base}/{key}" if self.base else key

    def key(self, path: str) -> str:
        """Return the key of a filesystem path under the base."""
        return path[len(self.base) + 1 :] if self.base else path

    def create_dirs(self, *keys: str) -> None:
        """Create directories (a no-op on object stores)."""
        with self._reached():
            for key in keys:
                self.filesystem.create_dir(self.path(key), recursive=True)

    def exists(self, key: str) -> bool:
        """Tell whether a file exists under a key."""
        with self._reached():
            info = self.filesystem.get_file_info(self.path(key))
        return bool(info.type == pafs.FileType.File)

    def put(self, local_path: str, key: str, *, synced: bool = False) -> None:
        """Move a local file to a key atomically; the local file is gone afterwards.

        `synced` says the writer already made the file durable, so it is not synced again.
        """
        if self.is_local:
            _move_local(Path(local_path), Path(self.path(key)), synced=synced)
            return
        # Object stores make an object visible only when its upload completes, so writing
        # straight to the key is already all-or-nothing; a partial file left by another kind
        # of filesystem has no row, so the sweep deletes it.
        parent = key.rpartition("/")[0]
        try:
            with self._reached():
                if parent:
                    self.filesystem.create_dir(self.path(parent), recursive=True)
                with (
                    open(local_path, "rb") as src,
                    self.filesystem.open_output_stream(self.path(key)) as dst,
                ):
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
        except BaseException:
            # A half-written file on a filesystem that shows one would be served as whole.
            with contextlib.suppress(OSError):
                self.filesystem.delete_file(self.path(key))
            raise
        os.unlink(local_path)

    def fetch(self, key: str, local_path: str) -> tuple[str, int]:
        """Copy a key to a local file; return the copy's sha256 and size."""
        digest = hashlib.sha256()
        size = 0
        try:
            with (
                self._reached(),
                self.filesystem.open_input_stream(self.path(key)) as src,
                open(local_path, "wb") as dst,
            ):
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
        except BaseException:
            # A copy cut short must not be left behind in tmp/ until the next start.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local_path)
            raise
        return digest.hexdigest(), size

    def delete(self, key: str) -> None:
        """Delete a key; a missing one is not an error."""
        with self._reached(), contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_file(self.path(key))

    def delete_dir(self, key: str) -> None:
        """Delete a directory with its contents; a missing one is not an error."""
        with self._reached(), contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_dir(self.path(key))

    def remove_empty_dir(self, key: str) -> None:
        """Remove a directory if it is empty, on local disk; object stores have no directories."""
        if self.is_local:
            # Not empty (a commit racing the delete) or already gone: the sweep tidies up.
            with contextlib.suppress(OSError):
                os.rmdir(self.path(key))

    def files_older_than(self, prefix: str, cutoff_ns: int) -> list[str]:
        """Return the keys of files under a prefix last written before `cutoff_ns` (epoch ns)."""
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        return [
            self.key(info.path)
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
            and info.mtime_ns is not None
            and info.mtime_ns < cutoff_ns
        ]

    def list(self, prefix: str) -> tuple[list[str], list[str]]:
        """Return the file keys and the directory keys under a prefix, recursively."""
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        files: list[str] = []
        dirs: list[str] = []
        with self._reached():
            infos = self.filesystem.get_file_info(selector)
        for info in infos:
            if info.type == pafs.FileType.File:
                files.append(self.key(info.path))
            elif info.type == pafs.FileType.Directory:
                dirs.append(self.key(info.path))
        return files, dirs


def _move_local(src: Path, dst: Path, *, synced: bool = False) -> None:
    """Rename a file into place durably, copying when it lives on another device."""
    if not synced:
        fsync_file(src)
    new_dir = not dst.parent.exists()
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # A temp name in the target directory keeps the final rename atomic; the sweep removes
        # the temp name if we crash before the rename.
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(src, tmp)
            fsync_file(tmp)
            os.replace(tmp, dst)
        except BaseException:
            # A full disk mid-copy must not leave the partial copy waiting for a restart.
            tmp.unlink(missing_ok=True)
            raise
        os.unlink(src)
    fsync_dir(dst.parent)
    if new_dir:
        fsync_dir(dst.parent.parent)


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return the filesystem and base path of an artifact URI such as `s3://bucket/prefix`.

    S3 takes the standard AWS variables: AWS_ENDPOINT_URL (e.g. MinIO's), AWS_REGION or
    AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    """
    if uri.startswith("s3://"):
        base = uri.removeprefix("s3://").strip("/")
        if not base:
            raise ValueError(f"artifact URI {uri!r} names no bucket")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        # Explicit, not FileSystem.from_uri: that asks AWS for the bucket's region, which an
        # S3-compatible endpoint on a private network cannot answer.
        s3 = pafs.S3FileSystem(
            endpoint_override=endpoint or None,
            region=region or "us-east-1",
            scheme="http" if (endpoint or "").startswith("http://") else "https",
        )
        return s3, base
    filesystem, path = pafs.FileSystem.from_uri(uri)
    return filesystem, path
