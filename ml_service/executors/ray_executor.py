"""The Ray executor: each job is a Ray actor on a cluster, with the CPUs and memory it asks for.

A job's TrainingResources (checked by the core against MLOPS_MAX_JOB_CPUS and
MLOPS_MAX_JOB_MEMORY_MB, defaults MLOPS_RAY_CPUS and MLOPS_RAY_MEMORY_MB) become the actor's
`num_cpus` and `memory`, and its CPUs rounded up are the fit's threads.

An actor rather than a task, for progress: a task speaks only when it returns, while an
actor with two threads trains on one and answers `progress()` on the other. The executor
polls it every PROGRESS_POLL_SECONDS (one small call) and hands what changed to the job
manager, so progress reaches the same watch path (and, in shared mode, the database) as a
local worker's. Polling from the service also means Ray workers need no route back to
the service, only to the object store.

- Data: with an object store (MLOPS_ARTIFACT_URI s3://...), the actor reads the dataset
  from it and writes the artifact to a staging key beside the artifacts; the service copies
  it back, checks its sha256 and commits it as it commits a local worker's. With the
  embedded store the actor uses the same local paths, so Ray must run on this machine.
- Cancel: `ray.kill` on the actor ends its process at once (`ray.cancel(force=True)` is
  the same for tasks).
- A killed worker process or a lost node fails the job: "the Ray worker running it was
  lost ...". A job whose actor no node has room for fails after MLOPS_RAY_START_TIMEOUT_SECONDS.
- A dead head: without its head no call to an actor answers, not even the end of its run,
  so the executor asks the head's port (HeadWatch) before a launch and every
  HEAD_CHECK_SECONDS of a run; away for HEAD_GRACE_SECONDS, the cluster is lost until the
  service restarts. Ray would end the whole service after 60 s without a head; the
  executor lifts that limit (RECONNECT_VARIABLE) so predictions go on.
- Restart: actors are owned by the service process (not detached), so when it dies Ray
  kills them; the restarted service (embedded) or another replica (shared, through the
  lease) marks the job failed. Re-attaching would need detached actors, which a crashed
  service would leave training with nobody to commit their result.

Only this module imports Ray, and only when MLOPS_TRAINING_EXECUTOR=ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_service import training_contract
from ml_service.config import MiB, Settings
from ml_service.domain import JobError, Progress
from ml_service.errors import Unavailable
from ml_service.executors.base import OnProgress, Outcome
from ml_service.executors.ray_worker import TrainingActor, blobs_at, is_uri
from ml_service.store.sweep import ARTIFACTS, dataset_key
from ml_service.training_contract import TrainingResources, TrainingTask, threads_for

log = logging.getLogger(__name__)

PROGRESS_POLL_SECONDS = 0.2
CONNECT_SECONDS = 5.0
ACTOR_PREFIX = "mlops-job-"
#: Where actors leave artifacts for the service to commit, under the artifact URI.
STAGING = f"{ARTIFACTS}/.staging"
LOST = "the Ray worker running it was lost (its process was killed or its node went away)"
#: How often a run checks that the head still answers, and how long it may not before the
#: cluster is taken as gone (a blip shorter than that is waited out).
HEAD_CHECK_SECONDS = 2.0
HEAD_GRACE_SECONDS = 10.0
#: Ray ends a driver whose head stays away this long (its default, 60 s, would end the
#: whole service, predictions included); the executor notices a lost head by itself first.
RECONNECT_VARIABLE = "RAY_gcs_rpc_server_reconnect_timeout_s"
RECONNECT_SECONDS = str(10 * 365 * 24 * 3600)


class RayRun:
    """One job's actor and the call that trains in it."""

    def __init__(
        self,
        ray: Any,
        actor: Any,
        task: TrainingTask,
        staged: str | None,
        start_timeout: float,
        what: str,
        head: HeadWatch,
    ) -> None:
        self._head = head
        self._ray = ray
        self._actor = actor
        self._task = task
        self._staged = staged
        self._start_timeout = start_timeout
        self._what = what
        remote_task = task if staged is None else dataclasses.replace(task, artifact_path=staged)
        self._done = _quiet(
            asyncio.wrap_future(actor.run.remote(training_contract.encode(remote_task)).future())
        )

    async def wait(self, on_progress: OnProgress) -> Outcome:
        """Wait for the actor to start, relay its progress, and collect its outcome."""
        try:
            return await self._follow(on_progress)
        except ConnectionError as exc:
            # Ray Client's (ray://) connection to the head broke: every call raises this.
            return Outcome(error=JobError("UNAVAILABLE", self._head.lose(exc)))
        finally:
            await self.stop()
            if self._staged is not None:
                await asyncio.to_thread(_delete_quietly, self._staged)

    async def stop(self) -> None:
        """Kill the actor: its process ends now, and Ray frees its CPUs and memory."""
        with contextlib.suppress(Exception):
            self._ray.kill(self._actor, no_restart=True)

    async def _follow(self, on_progress: OnProgress) -> Outcome:
        ray_error = self._ray.exceptions.RayError
        started = _quiet(asyncio.wrap_future(self._actor.pid.remote().future()))
        # asyncio.wait, not wait_for: on Python 3.11 wait_for swallows a cancel that meets
        # the actor's answer, and the server's stop would then wait for ever.
        deadline = time.monotonic() + self._start_timeout
        while not started.done():
            left = deadline - time.monotonic()
            if left <= 0:
                text = f"no Ray node had room for {self._what} within {self._start_timeout:g} s"
                return Outcome(error=JobError("UNAVAILABLE", text))
            await asyncio.wait({started}, timeout=min(left, HEAD_CHECK_SECONDS))
            if not started.done() and not await self._head.answers():
                return Outcome(error=JobError("UNAVAILABLE", self._head.gone))
        try:
            started.result()
        except ray_error as exc:
            log.warning("the Ray actor of a job did not start: %s", exc)
            return Outcome(error=JobError("ABORTED", LOST))
        last = "null"
        asking: asyncio.Future[Any] | None = None
        checked = time.monotonic()
        while True:
            finished, _ = await asyncio.wait({self._done}, timeout=PROGRESS_POLL_SECONDS)
            if finished:
                break
            if time.monotonic() - checked >= HEAD_CHECK_SECONDS:
                checked = time.monotonic()
                # Without its head no call to the actor answers, not even its end: ask the
                # head's port instead of waiting for ever.
                if not await self._head.answers():
                    return Outcome(error=JobError("UNAVAILABLE", self._head.gone))
            if asking is None:
                asking = _quiet(asyncio.wrap_future(self._actor.progress.remote().future()))
            # An answer takes milliseconds; one that does not come never holds the loop.
            await asyncio.wait({asking}, timeout=PROGRESS_POLL_SECONDS)
            if not asking.done():
                continue
            done, asking = asking, None
            try:
                text = done.result()
            except ray_error:
                continue  # the actor is gone; the run's own answer says so next round
            if text != last:
                last = text
                await on_progress(Progress(**json.loads(text)))
        try:
            message: dict[str, Any] = json.loads(self._done.result())
        except ray_error as exc:
            log.warning("the Ray actor of a job ended without an answer: %s", exc)
            return Outcome(error=JobError("ABORTED", LOST))
        if message["type"] == "error":
            return Outcome(error=JobError(message["code"], message["message"]))
        if self._staged is not None:
            expected = json.loads(message["result"])["artifact_sha256"]
            try:
                sha256 = await asyncio.to_thread(_fetch, self._staged, self._task.artifact_path)
            except OSError as exc:
                text = f"could not copy the model artifact from the object store: {exc}"
                return Outcome(error=JobError("UNAVAILABLE", text))
            if sha256 != expected:
                text = "the model artifact changed between the Ray worker and the service"
                return Outcome(error=JobError("INTERNAL", text))
        return Outcome(result=message["result"])


class _NotOurSigterm(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SIGTERM handler is not set")


def _ray_logs_as_ours() -> None:
    """Send Ray's driver-side log lines through the service's handler.

    Ray gives its logger a plain-text handler of its own on import, so an operator's JSON
    log had lines of another shape in it. Its warning that ray.init, run off the main
    thread, set no SIGTERM handler is dropped: the service handles SIGTERM itself.
    """
    ray_logger = logging.getLogger("ray")
    ray_logger.handlers.clear()
    ray_logger.propagate = True
    # A logger's filters see only what is logged to it, not what its children pass up.
    driver = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _NotOurSigterm) for f in driver.filters):
        driver.addFilter(_NotOurSigterm())


class HeadWatch:
    """Whether the cluster's head still answers on its port, shared by the executor's runs.

    Ray's driver cannot join a head that came back (a restarted head is a new cluster), so
    once the head has been away for HEAD_GRACE_SECONDS it is taken as lost for good: runs
    fail saying so, and so do later launches, until the service is restarted.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.lost = False
        self._away_since: float | None = None
        self.gone = (
            f"the Ray cluster at {address} went away (its head stopped answering); "
            "the service trains on Ray again once restarted with the head back"
        )

    async def answers(self) -> bool:
        """Ask the head's port; False once it has not answered for HEAD_GRACE_SECONDS."""
        if self.lost:
            return False
        try:
            await asyncio.to_thread(_reachable, self.address)
        except ConnectionError:
            now = time.monotonic()
            if self._away_since is None:
                self._away_since = now
            if now - self._away_since < HEAD_GRACE_SECONDS:
                return True
            if not self.lost:
                log.error("lost the Ray cluster at %s: restart the service to train", self.address)
            self.lost = True
            return False
        self._away_since = None
        return True

    def lose(self, exc: BaseException) -> str:
        """Take the cluster as lost for good (a broken Ray Client connection); return why."""
        if not self.lost:
            log.error(
                "lost the Ray cluster at %s: %s; restart the service to train", self.address, exc
            )
        self.lost = True
        return self.gone

    async def check(self) -> None:
        """Raise Unavailable unless the head answers now (a job is not sent to a dead head)."""
        if not await self.answers():
            raise Unavailable(self.gone)
        if self._away_since is not None:
            raise Unavailable(f"the Ray cluster at {self.address} does not answer")


class RayExecutor:
    """Run each job as a Ray actor on the cluster at MLOPS_RAY_ADDRESS."""

    name = "ray"

    def __init__(self, settings: Settings, locate: Callable[[str], str]) -> None:
        self._settings = settings
        self._locate = locate
        self._uri = settings.artifact_uri.rstrip("/")
        # Object store: actors anywhere read and write it. Local directory: same machine.
        self._remote = is_uri(self._uri)
        self._ray: Any = None
        self._actor_class: Any = None
        self._head = HeadWatch(settings.ray_address)

    async def start(self) -> None:
        """Import Ray and connect to the cluster; fail with the address when it is away."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        if not self._settings.ray_address.startswith("ray://"):
            # Read by Ray's driver (before its import, to be sure); an operator's value wins.
            # Ray Client (ray://) runs no driver here, and its head would take the value.
            os.environ.setdefault(RECONNECT_VARIABLE, RECONNECT_SECONDS)
        import ray

        _ray_logs_as_ours()
        settings = self._settings
        if not ray.is_initialized():
            _reachable(settings.ray_address)
            try:
                # Workers' output stays in Ray's logs: the service's own lines are JSON.
                ray.init(
                    address=settings.ray_address,
                    namespace=settings.ray_namespace,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                # An OSError: the service exits naming the address instead of a traceback.
                raise ConnectionError(
                    f"could not reach the Ray cluster at MLOPS_RAY_ADDRESS="
                    f"{settings.ray_address!r}: {exc}"
                ) from None
        self._ray = ray
        self._actor_class = ray.remote(TrainingActor)
        head = settings.ray_address
        if not head.startswith("ray://") and not _host_port(head):
            # "auto" (the default), or RAY_ADDRESS: the head Ray found is the one to watch.
            head = ray.get_runtime_context().gcs_address
            self._head = HeadWatch(head)
        log.info("training on the Ray cluster at %s (head %s)", settings.ray_address, head)

    async def close(self) -> None:
        """Keep the connection: Ray allows one per process, and it ends with the process."""

    def dataset_location(self, digest: str) -> str:
        """Return the dataset's URI in the object store, or its local path without one."""
        if self._remote:
            return f"{self._uri}/{dataset_key(digest)}"
        return self._locate(digest)

    async def launch(self, job_id: str, task: TrainingTask) -> RayRun:
        """Create the job's actor with the job's resource requests and start the training call."""
        settings = self._settings
        await self._head.check()
        resources = task.resources or TrainingResources(settings.ray_cpus, settings.ray_memory_mb)
        options: dict[str, Any] = {
            "name": f"{ACTOR_PREFIX}{job_id}",
            "namespace": settings.ray_namespace,
            "num_cpus": resources.cpus,
            "max_concurrency": 2,
            "max_restarts": 0,
        }
        if resources.memory_mb:
            options["memory"] = resources.memory_mb * MiB
        try:
            # In a thread: creating a named actor asks the head, and waits for it (60 s) when
            # it has just gone; the event loop serves predictions meanwhile.
            actor = await asyncio.to_thread(self._actor_class.options(**options).remote)
        except ConnectionError as exc:
            raise Unavailable(self._head.lose(exc)) from None
        except self._ray.exceptions.RayError as exc:
            log.warning("the Ray cluster did not take job %s: %s", job_id, exc)
            text = f"the Ray cluster at {settings.ray_address} did not take the job in time"
            raise Unavailable(text) from None
        task = dataclasses.replace(task, threads=threads_for(resources), resources=resources)
        staged = None
        if self._remote:
            staged = f"{self._uri}/{STAGING}/{job_id}{Path(task.artifact_path).suffix}"
        try:
            return RayRun(
                self._ray,
                actor,
                task,
                staged,
                settings.ray_start_timeout_seconds,
                _what(resources),
                self._head,
            )
        except ConnectionError as exc:
            raise Unavailable(self._head.lose(exc)) from None


def _what(resources: TrainingResources) -> str:
    """Describe what a job asked Ray for, e.g. "2 CPUs, 512 MiB"."""
    memory = f", {resources.memory_mb} MiB" if resources.memory_mb else ""
    return f"{resources.cpus:g} CPUs{memory}"


def _host_port(address: str) -> tuple[str, int] | None:
    """The host and port of a head's address (ray:// or not); None for "auto" and the like."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def _reachable(address: str) -> None:
    """Fail fast when a head's host:port does not answer: ray.init would wait for ever."""
    if (where := _host_port(address)) is None:
        return  # "auto" and the like: ray.init looks for a local node and says so at once
    host, port = where
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise ConnectionError(
            f"could not reach the Ray cluster at MLOPS_RAY_ADDRESS={address!r}: {exc}"
        ) from None


def _quiet(future: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Mark a call's error as seen: a run that ends early never reads some answers."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


def _fetch(uri: str, local_path: str) -> str:
    blobs, path = blobs_at(uri)
    sha256, _ = blobs.fetch(path, local_path)
    return sha256


def _delete_quietly(uri: str) -> None:
    with contextlib.suppress(OSError):
        blobs, path = blobs_at(uri)
        blobs.delete(path)


__all__ = ["RayExecutor", "RayRun"]
