"""Stages of a file prediction side by side: read ahead and write behind, in bounded memory.

Parsing a CSV, encoding IPC and writing answers all release the GIL inside Arrow, so a
thread per stage lets them run while the stream waits on the network, with at most
`depth` items queued between stages (the memory bound). An error in a stage's thread is
kept and raised in the caller's thread, where a user sees it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.1


class _End:
    """What a stage's queue holds after its last item."""


_END = _End()


class ReadAhead(Generic[T]):
    """Iterate `source` in a thread, at most `depth` items ahead of the consumer."""

    def __init__(self, source: Iterable[T], depth: int) -> None:
        self.error: BaseException | None = None
        self._queue: queue.Queue[T | _End] = queue.Queue(depth)
        self._stopped = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(source,), name="mlops-read-ahead", daemon=True
        )
        self._thread.start()

    def _run(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not _put(self._queue, item, self._stopped):
                    return
        except Exception as exc:  # raised again by __next__, in the consumer's thread
            self.error = exc
        _put(self._queue, _END, self._stopped)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _End):
            self._done = True
            if self.error is not None:
                raise self.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread to finish its current item."""
        self._stopped.set()
        self._thread.join()


class WriteBehind(Generic[T]):
    """Hand items to `write` in a thread, at most `depth` waiting; close() waits for the last."""

    def __init__(self, write: Callable[[T], None], depth: int) -> None:
        self._write = write
        self._error: BaseException | None = None
        self._queue: queue.Queue[T | _End] = queue.Queue(depth)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlops-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not isinstance(item := self._queue.get(), _End):
            try:
                self._write(item)
            except Exception as exc:  # raised again by put() or close()
                self._error = exc
                self._stopped.set()  # unblock a put() waiting on a full queue
                return

    def put(self, item: T) -> None:
        """Queue an item for writing; raise the writer's error if it has failed."""
        if self._error is None:
            _put(self._queue, item, self._stopped)
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write what is queued, stop the thread, and raise the writer's error if any."""
        _put(self._queue, _END, self._stopped)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop without writing what is still queued (the caller is failing anyway)."""
        if not self._thread.is_alive():
            return
        self._stopped.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        _put(self._queue, _END, threading.Event())
        self._thread.join()


def _put(into: queue.Queue[T | _End], item: T | _End, stopped: threading.Event) -> bool:
    # A bounded put that gives up once the other side has stopped, so no thread waits forever.
    while not stopped.is_set():
        try:
            into.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False
