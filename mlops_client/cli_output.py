"""What the command line prints: tables or plain lines, JSON for scripts, training progress."""

from __future__ import annotations

import dataclasses
import enum
import errno
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

from mlops_client.results import Job

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

# rich's bars and tables are imported where a terminal shows them: a script's `mlops
# predict` (no terminal) starts about 0.1 s sooner without them.


class _Output(Console):
    """Standard output; a reader that stops early (`| head`) is left to `reported()`."""

    def on_broken_pipe(self) -> None:
        # rich's own answer is a silent exit 1; the command's is exit 0, as `predict -o -`.
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


out = _Output(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def jsonable(value: Any) -> Any:
    """Turn results (dataclasses, enums, datetimes, mappings) into JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(jsonable(value), indent=2) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a table on a terminal, else as tab-separated lines with a header."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    if not out.is_terminal:
        for line in [list(headers), *cells]:
            sys.stdout.write("\t".join(line) + "\n")
        return
    from rich.table import Table

    grid = Table(*headers, box=None, header_style="bold")
    for row in cells:
        grid.add_row(*row)
    out.print(grid)


def loss_of(job: Job) -> str:
    """The latest holdout loss (or learn loss when there is no holdout), as text."""
    metrics = job.progress.metrics
    name = next((k for k in metrics if k.startswith("holdout")), None) or next(iter(metrics), None)
    return f"{name}={metrics[name]:.4f}" if name else ""


class TrainingProgress:
    """A live bar on a terminal; on anything else a plain line per stage and every tenth."""

    def __init__(self) -> None:
        self.live = err.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last = ("", -1)
        self._started = time.monotonic()

    def __enter__(self) -> TrainingProgress:
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[iteration]}"),
                TextColumn("{task.fields[loss]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("queued", total=1.0, iteration="", loss="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, job: Job) -> None:
        """Show one update of the job."""
        p = job.progress
        iteration = f"iteration {p.iteration}/{p.total_iterations}" if p.total_iterations else ""
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                completed=p.fraction,
                description=f"{job.job_id} {p.stage or job.state}",
                iteration=iteration,
                loss=loss_of(job),
            )
            return
        tenth = int(p.fraction * 10)
        if (p.stage, tenth) != self._last:
            self._last = (p.stage, tenth)
            parts = [
                job.job_id,
                str(job.state),
                p.stage,
                f"{p.fraction:.0%}",
                iteration,
                loss_of(job),
            ]
            err.print(" ".join(x for x in parts if x), markup=False)


class RowsProgress:
    """A live count of rows and their rate on a terminal; nothing on anything else."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._done = 0
        self._started = time.monotonic()

    def __enter__(self) -> RowsProgress:
        if err.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("predicting"),
                BarColumn(bar_width=None, pulse_style="cyan"),
                TextColumn("{task.completed:,.0f} rows  {task.fields[rate]}"),
                TimeElapsedColumn(),
                console=err,
            )
            self._progress.start()
            self._task = self._progress.add_task("rows", total=None, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, rows: int) -> None:
        """Count rows predicted."""
        self._done += rows
        if self._progress is not None and self._task is not None:
            rate = self._done / max(time.monotonic() - self._started, 1e-9)
            self._progress.update(self._task, completed=self._done, rate=f"{rate:,.0f} rows/s")
