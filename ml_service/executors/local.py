"""The default executor: one process per job, forked from a forkserver on this machine.

The forkserver has already imported the ML libraries, so a job starts in milliseconds and a
crash or a cancel never touches the server process. Messages between server and worker are
JSON over a pipe: nothing is ever unpickled from a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from ml_service import training_contract
from ml_service.domain import JobError, Progress
from ml_service.executors.base import OnProgress, Outcome
from ml_service.training_contract import TrainingTask
from ml_service.worker import worker_main

# What the forkserver imports once, so every worker forked from it starts with it loaded.
PRELOAD = [
    "ml_service.kinds.catboost_model",
    "ml_service.kinds.logistic_model",
    "ml_service.kinds.sklearn_pipeline",
    "ml_service.trainer",
    "ml_service.worker",
]


class LocalRun:
    """A worker process and the read end of its pipe."""

    def __init__(
        self, process: BaseProcess, reader: multiprocessing.connection.Connection, grace: float
    ) -> None:
        self._process = process
        self._reader = reader
        self._grace = grace

    async def wait(self, on_progress: OnProgress) -> Outcome:
        """Relay the worker's progress until it reports an outcome or exits."""
        message = await self._follow(on_progress)
        self._reader.close()
        await asyncio.to_thread(self._process.join, self._grace + 5)
        if message is None:
            code = self._process.exitcode
            text = f"the training worker stopped unexpectedly (exit code {code})"
            return Outcome(error=JobError("INTERNAL", text))
        if message["type"] == "error":
            return Outcome(error=JobError(message["code"], message["message"]))
        return Outcome(result=message["result"])

    async def stop(self) -> None:
        """Terminate the worker, and kill it when it does not exit within the grace."""
        proc = self._process
        if not proc.is_alive():
            return
        proc.terminate()
        await asyncio.to_thread(proc.join, self._grace)
        if proc.is_alive():
            proc.kill()
            await asyncio.to_thread(proc.join, 5)

    async def _follow(self, on_progress: OnProgress) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        reader = self._reader
        messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def on_readable() -> None:
            try:
                while reader.poll():
                    messages.put_nowait(json.loads(reader.recv_bytes()))
            except (EOFError, OSError):
                loop.remove_reader(reader.fileno())
                messages.put_nowait(None)

        loop.add_reader(reader.fileno(), on_readable)
        try:
            while True:
                message = await messages.get()
                if message is None or message["type"] != "progress":
                    return message
                await on_progress(Progress(**message["progress"]))
        finally:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(reader.fileno())


class LocalExecutor:
    """Run each job in a worker process forked from the forkserver."""

    name = "local"

    def __init__(self, locate: Callable[[str], str], cancel_grace_seconds: float) -> None:
        self._locate = locate
        self._grace = cancel_grace_seconds
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)

    async def start(self) -> None:
        """Start the forkserver, which imports the ML libraries while the server answers."""
        # The first job's start waits for those imports; nothing else does.
        multiprocessing.forkserver.ensure_running()

    async def close(self) -> None:
        """Nothing to release: the forkserver exits with the server."""

    def dataset_location(self, digest: str) -> str:
        """Return a local path: the worker runs on this machine."""
        return self._locate(digest)

    async def launch(self, job_id: str, task: TrainingTask) -> LocalRun:
        """Fork a worker for the task."""
        reader, writer = self._ctx.Pipe(duplex=False)
        payload = training_contract.encode(task)
        proc = self._ctx.Process(target=worker_main, args=(payload, writer), daemon=True)
        try:
            await asyncio.to_thread(proc.start)
        finally:
            writer.close()
        return LocalRun(proc, reader, self._grace)
