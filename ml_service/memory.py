"""Give the memory that large predictions freed back to the system once they are over.

Allocators keep freed memory for reuse: Arrow's pool (mimalloc, per thread), and glibc's
malloc, whose threshold for serving a block by mmap rises after the first large free, so
batch-sized buffers then come from heaps that rarely shrink, one arena per thread. After
one 200k-row file through StreamPredict the idle service held over 100 MB it no longer used.

`python -m ml_service` makes the system allocator Arrow's default before pyarrow loads (what
Arrow's C++ allocates without a pool goes there too), and `configure` (once, at start) puts
the buffers pyarrow allocates in malloc's heaps where that was not done, and caps those heaps at
two arenas; a second after the last large prediction ends, with none started since,
`Trimmer` has malloc return its free pages: a cost of milliseconds paid once per burst of
work, never per batch. (A fixed mmap threshold returns memory at once too, but it doubled
the CPU time of a 64k-row logistic-regression batch in page faults.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable, Iterator

import pyarrow as pa

log = logging.getLogger(__name__)

# Quiet this long after large work before trimming: a busy service never pays for it.
IDLE_SECONDS = 1.0
# Arenas for threads allocating at once: two predictions run at a time (a stream keeps two
# batches in flight); more arenas only keep more freed memory apart.
ARENA_MAX = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def _libc(function: str) -> Callable[..., int] | None:
    # glibc only; elsewhere (musl, macOS) memory is left to the allocator.
    try:
        found: Callable[..., int] = getattr(ctypes.CDLL(ctypes.util.find_library("c")), function)
    except (OSError, AttributeError):
        return None
    return found


_TRIM = _libc("malloc_trim")
_MALLOPT = _libc("mallopt")


def configure() -> None:
    """Set the allocators up to give memory back; call once at start, before any threads.

    What the environment already chose (MALLOC_ARENA_MAX, ARROW_DEFAULT_MEMORY_POOL) stands.
    """
    if _MALLOPT is not None and "MALLOC_ARENA_MAX" not in os.environ:
        _MALLOPT(_M_ARENA_MAX, ARENA_MAX)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        # The same speed on our batches, and its free pages are malloc's to trim.
        pa.set_memory_pool(pa.system_memory_pool())


def purge_freed_pages_at_once() -> None:
    """Have the libraries loaded from now on that bundle mimalloc (CatBoost) free at once.

    CatBoost allocates through a mimalloc of its own, which keeps the pages a thread freed
    until that thread allocates again; the threads that predicted a file's batches go idle
    holding them (~40 MB after a 3M-row file, returned at once with no loss of speed). Call
    it in the serving process after the training forkserver started, so training keeps
    mimalloc's default, and before CatBoost loads. What the environment chose stands.
    """
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")


def release() -> None:
    """Return freed memory to the system: Arrow's pool first, then malloc's heaps."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)


class Trimmer:
    """Count large work in flight on one event loop; release memory once it has been quiet."""

    def __init__(
        self, idle_seconds: float = IDLE_SECONDS, release: Callable[[], None] = release
    ) -> None:
        self._idle_seconds = idle_seconds
        self._release = release
        self._busy = 0
        # Bumped by each start, so a timer armed before later work started does nothing.
        self._generation = 0
        self._timer: asyncio.TimerHandle | None = None
        self.releases = 0

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Mark large work in flight for the duration of the block."""
        self._busy += 1
        self._generation += 1
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a stream finalised after its loop closed
            return
        self._timer = loop.call_later(self._idle_seconds, self._quiet, self._generation)

    def _quiet(self, generation: int) -> None:
        self._timer = None
        if self._busy == 0 and generation == self._generation:
            self.releases += 1
            # In a thread: trimming large heaps takes milliseconds the loop should not wait.
            asyncio.get_running_loop().run_in_executor(None, self._release)
