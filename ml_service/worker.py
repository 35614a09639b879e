"""Entry point of a training worker process: JSON task in, JSON progress and outcome out."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing.connection
from typing import Any

from ml_service.domain import Progress
from ml_service.errors import InvalidArgument
from ml_service.training import TrainingTask, train

log = logging.getLogger(__name__)


def worker_main(payload: str, conn: multiprocessing.connection.Connection | None) -> None:
    """Train the task in `payload` and report to `conn`; an empty payload only warms up."""
    if not payload or conn is None:
        return

    def send(message: dict[str, Any]) -> None:
        conn.send_bytes(json.dumps(message).encode())

    def report(progress: Progress) -> None:
        send({"type": "progress", "progress": dataclasses.asdict(progress)})

    try:
        task = TrainingTask(**json.loads(payload))
        result = train(task, report)
    except InvalidArgument as exc:
        send({"type": "error", "code": "INVALID_ARGUMENT", "message": exc.message})
    except (ValueError, ArithmeticError) as exc:
        # The libraries raise these for data they cannot fit; the text helps the user.
        send({"type": "error", "code": "FAILED_PRECONDITION", "message": f"training failed: {exc}"})
    except Exception:
        log.exception("training worker failed")
        send({"type": "error", "code": "INTERNAL", "message": "internal error"})
    else:
        send({"type": "result", "result": dataclasses.asdict(result)})
    finally:
        conn.close()
