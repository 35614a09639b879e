"""Freed memory goes back to the system once large work has been quiet for a while."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.harness import free_port, wait_until
from ml_service import memory
from ml_service.memory import Trimmer
from mlops_client import Client
from tests.conftest import DATA_DIR


class Releases:
    """Count calls, from whichever thread makes them."""

    def __init__(self) -> None:
        self.count = 0
        self.called = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.called.set()


async def test_memory_is_released_once_after_the_last_large_work_ends() -> None:
    releases = Releases()
    trimmer = Trimmer(idle_seconds=0.05, release=releases)
    with trimmer.working(), trimmer.working():
        await asyncio.sleep(0.1)
        assert releases.count == 0  # never while work is in flight
    await asyncio.to_thread(releases.called.wait, 5)
    await asyncio.sleep(0.1)
    assert releases.count == 1


async def test_work_starting_in_the_quiet_period_postpones_the_release() -> None:
    releases = Releases()
    trimmer = Trimmer(idle_seconds=0.2, release=releases)
    with trimmer.working():
        pass
    await asyncio.sleep(0.1)
    with trimmer.working():
        await asyncio.sleep(0.2)  # the first timer fires now, and must do nothing
        assert releases.count == 0
    await asyncio.to_thread(releases.called.wait, 5)
    assert releases.count == 1


def test_libraries_bundling_mimalloc_are_told_to_free_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MIMALLOC_PURGE_DELAY", raising=False)
    memory.purge_freed_pages_at_once()
    assert os.environ["MIMALLOC_PURGE_DELAY"] == "0"


def test_an_operator_s_mimalloc_setting_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMALLOC_PURGE_DELAY", "25")
    memory.purge_freed_pages_at_once()
    assert os.environ["MIMALLOC_PURGE_DELAY"] == "25"


def huge_page_mappings(pid: int) -> list[str]:
    """The process's mappings advised to use transparent huge pages (VmFlags `hg`)."""
    found, mapping = [], ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if not line.split()[0].endswith(":"):
            mapping = line
        elif line.startswith("VmFlags:") and " hg" in line:
            found.append(mapping)
    return found


def test_the_service_keeps_no_huge_pages_for_an_uploads_buffers(tmp_path: Path) -> None:
    # Arrow's Parquet writer took an upload's buffers from pyarrow's bundled mimalloc, which
    # advises huge pages: 18 MB stayed resident in the idle service, 2 MB a page.
    port = free_port()
    command = [sys.executable, "-m", "ml_service", "--port", str(port), "--data-dir", str(tmp_path)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "ARROW_"))}
    service = subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)
    try:
        with Client(f"127.0.0.1:{port}") as client:
            wait_until(lambda: bool(client.kinds()), "the service", 60)
            client.train(DATA_DIR / "penguins.csv", "logistic_regression", "species")
            assert huge_page_mappings(service.pid) == []
    finally:
        service.kill()
        service.wait(30)
