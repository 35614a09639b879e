"""What a training tab shows of a job as it runs and when it ends: one JobUpdate per event."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from ui import evaluation, tables
from ui.errors import CLEAR, error_html
from ui.schemas import Job, ModelVersion

Update = dict[str, Any]
# What a training run shows: job id (for Cancel), progress bar, result text, result table,
# the start button, the learning curve and the error area.
JobUpdate = tuple[str, str, str, pd.DataFrame | Update, Update, str | Update, str]
# Iteration -> losses at that iteration, gathered from the job's progress events.
Points = dict[int, dict[str, float | None]]


def button(label: str, busy: bool) -> Update:
    """The start button: disabled and saying so while its job runs."""
    update: Update = gr.update(interactive=not busy, value="Training…" if busy else label)
    return update


def ended(job: Job, label: str) -> JobUpdate | None:
    """The last update of a job that did not succeed, or None when it did."""
    free = button(label, False)
    bar = tables.progress_html(job)
    if job.state == "failed":
        message = job.error.message if job.error else "unknown error"
        error = error_html(f"Training job {job.job_id} failed: {message}", "Training failed")
        return "", bar, "", gr.skip(), free, gr.skip(), error
    if job.result is None:
        said = f"Job `{job.job_id}` was cancelled."
        return "", bar, said, gr.skip(), free, gr.skip(), CLEAR
    return None


NO_CHANGE: JobUpdate = (gr.skip(),) * 7


def nothing(label: str) -> JobUpdate:
    """The last update of a job that ended with nothing to show: the button back."""
    return "", gr.skip(), gr.skip(), gr.skip(), button(label, False), gr.skip(), CLEAR


def add_points(points: Points, job: Job) -> str:
    """Add a job's latest losses to the points seen so far; return the live chart."""
    if job.progress.metrics and job.progress.iteration:
        points[job.progress.iteration] = dict(job.progress.metrics)
    return evaluation.live_curve_html(points)


def final_curve(version: ModelVersion) -> str | Update:
    """The stored learning curve of a finished job (every iteration it sampled), if it has one.

    Events can skip iterations and a page that re-attached saw only the end; the stored curve
    is the whole run. Without one (an older service), the live chart stays as it is.
    """
    if version.learning_curve is None or not version.learning_curve.series:
        skip: Update = gr.skip()
        return skip
    return evaluation.learning_curve_html(version, "Learning curve (stored with the version)")
