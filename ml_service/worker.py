"""Entry point of a training worker process: JSON task in, JSON progress and outcome out.

run_task is the part every executor shares (a Ray actor runs it too).

The server imports this module only to name worker_main as the target of new workers, so
it must not load the ML libraries at import time. The forkserver preloads them
(ml_service.executors.local.PRELOAD), so each worker forked from it starts with them loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import errno
import json
import logging
import multiprocessing.connection
import re
import signal
from collections.abc import Callable
from typing import Any

from ml_service.domain import Progress
from ml_service.errors import InvalidArgument

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# "catboost/private/libs/options/boosting_options.cpp:79: " and the like: where in a library's
# source a message was raised means nothing to a user.
_SOURCE_PLACE = re.compile(r"(?:[\w.\-]+/)*[\w.\-]+\.(?:cpp|cc|cxx|h|hpp|c|pyx|py):\d+:\s*")
_MAX_MESSAGE = 400


def plain_message(exc: BaseException) -> str:
    """Return a library's error text as a user should read it: no source places, one line."""
    text = _SOURCE_PLACE.sub("", str(exc)).strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    return first if len(first) <= _MAX_MESSAGE else first[: _MAX_MESSAGE - 3] + "..."


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies.

    A worker's parent is the forkserver, which exits when the server does; without this a
    worker orphaned by a server crash could write into a store that has been reopened.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def worker_main(payload: str, conn: multiprocessing.connection.Connection | None) -> None:
    """Train the task in `payload` and report to `conn`."""
    if not payload or conn is None:
        return
    die_with_parent()

    def send(message: dict[str, Any]) -> None:
        conn.send_bytes(json.dumps(message).encode())

    def report(progress: Progress) -> None:
        send({"type": "progress", "progress": dataclasses.asdict(progress)})

    try:
        send(run_task(payload, report))
    except BrokenPipeError:
        return  # the server went away (shutdown or cancel); nobody is left to tell
    finally:
        conn.close()


def run_task(payload: str, report: Callable[[Progress], None]) -> dict[str, Any]:
    """Train the task in `payload`; return the message that ends the run.

    That is {"type": "result", "result": <encoded TrainingResult>} or {"type": "error",
    "code": ..., "message": ...} in a user's words. `report` may raise BrokenPipeError when
    nobody listens any more; it is passed on.
    """
    # Already imported when this process was forked from the forkserver.
    from catboost import CatBoostError

    from ml_service import training_contract
    from ml_service.trainer import train

    try:
        result = train(training_contract.decode_task(payload), report)
    except BrokenPipeError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.exception("training worker failed")
            return {"type": "error", "code": "INTERNAL", "message": "internal error"}
        message = "no space left for the model artifact"
        return {"type": "error", "code": "RESOURCE_EXHAUSTED", "message": message}
    except InvalidArgument as exc:
        return {"type": "error", "code": "INVALID_ARGUMENT", "message": exc.message}
    except (ValueError, ArithmeticError, CatBoostError) as exc:
        # The libraries raise these for data they cannot fit; the text helps the user.
        message = f"training failed: {plain_message(exc)}"
        return {"type": "error", "code": "FAILED_PRECONDITION", "message": message}
    except Exception:
        log.exception("training worker failed")
        return {"type": "error", "code": "INTERNAL", "message": "internal error"}
    return {"type": "result", "result": training_contract.encode(result)}
