"""The Jobs tab: queued, running and recent jobs, refreshed every few seconds, with cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import gradio as gr
import pandas as pd

from ui import tables
from ui.client import GatewayClient
from ui.errors import CLEAR, NotYet, inline_errors
from ui.schemas import Job

JOBS_COLUMNS = ["Job", "State", "Progress", "Model", "Kind", "Started", "Duration", "Error"]
REFRESH_SECONDS = 2.0
Update = dict[str, Any]


def duration(job: Job, now: datetime | None = None) -> str:
    """How long a job ran (or has been running, or waiting), as "1 min 5 s"."""
    start = job.start_time or job.create_time
    if start is None:
        return tables.MISSING
    end = job.end_time or now or datetime.now(UTC)
    seconds = max(0, round((end - start).total_seconds()))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def progress_text(job: Job) -> str:
    """The job's stage and percentage in words, as the training tabs show it."""
    if job.state == "succeeded":
        return "Done · 100%"
    if job.state in ("failed", "cancelled"):
        return job.state.capitalize()
    text = tables.STAGES.get(job.progress.stage, job.progress.stage.capitalize() or "Working")
    if job.progress.total_iterations:
        text += f": iteration {job.progress.iteration} of {job.progress.total_iterations}"
    return f"{text} · {tables.shown_percent(job)}%"


def jobs_table(jobs: list[Job], now: datetime | None = None) -> pd.DataFrame:
    """One row per job, newest first."""
    rows = [
        [
            j.job_id,
            j.state,
            progress_text(j),
            j.model_id or tables.MISSING,
            j.kind,
            tables.format_time(j.start_time),
            duration(j, now),
            j.error.message if j.error else "",
        ]
        for j in jobs
    ]
    return pd.DataFrame(rows, columns=JOBS_COLUMNS)


class Jobs:
    """Jobs tab handlers bound to one gateway client."""

    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    @inline_errors(4)
    def refresh(
        self, current: str | None, offered: list[str]
    ) -> tuple[pd.DataFrame, Update, list[str], str]:
        """Reload the table; offer the unfinished jobs to cancel, touching the picker only
        when that list changed (so an open dropdown is not reset every refresh)."""
        jobs = self.client.jobs()
        table = jobs_table(jobs)
        running = [j.job_id for j in jobs if not j.finished]
        if running == offered:
            return table, gr.skip(), offered, CLEAR
        value = current if current in running else (running[0] if running else None)
        return table, gr.update(choices=running, value=value), running, CLEAR

    @inline_errors(2)
    def cancel(self, job_id: str | None) -> tuple[str, str]:
        """Cancel the chosen job and say so."""
        if not job_id:
            raise NotYet("No job is queued or running.")
        job = self.client.cancel(job_id)
        return f"Asked job `{job.job_id}` to stop; it was {job.state}.", CLEAR


def jobs_tab(jobs: Jobs, private: dict[str, Any]) -> None:
    """Lay out the Jobs tab and refresh it every REFRESH_SECONDS."""
    error = gr.HTML(elem_id="jobs-error")
    table = gr.Dataframe(
        tables.empty(JOBS_COLUMNS),
        label="Training jobs, newest first",
        interactive=False,
        elem_id="jobs-table",
    )
    offered = gr.State([])
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(label="Queued or running job", choices=[], elem_id="jobs-pick", scale=3)
        cancel = gr.Button("Cancel job", variant="stop", elem_id="jobs-cancel", scale=1)
    said = gr.Markdown(elem_id="jobs-result")
    timer = gr.Timer(REFRESH_SECONDS)
    outputs = [table, pick, offered, error]
    timer.tick(jobs.refresh, [pick, offered], outputs, show_progress="hidden", **private)
    cancel.click(jobs.cancel, pick, [said, error], **private).then(
        jobs.refresh, [pick, offered], outputs, show_progress="hidden", **private
    )
