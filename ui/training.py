"""Event handlers of the Train and Retrain tabs: uploads, forms, and jobs followed live.

The training handlers are generators: each job event from the gateway's Server-Sent Events
becomes one update of the progress bar, and the last one carries the result.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ui import forms, tables
from ui.client import GatewayClient
from ui.errors import fail, shows_errors
from ui.schemas import Job, ModelKind, ModelVersion

# What a training run shows: job id (for Cancel), progress bar, result text, result table.
JobUpdate = tuple[str, str, str, pd.DataFrame | dict[str, Any]]


def find_kind(kinds: Sequence[ModelKind], name: str | None) -> ModelKind | None:
    """Return the kind called `name`, if the gateway offers it."""
    return next((kind for kind in kinds if kind.name == name), None)


class Training:
    """Train and retrain handlers bound to one gateway client."""

    def __init__(self, client: GatewayClient, *, preview_rows: int = 10) -> None:
        self.client = client
        self.preview_rows = preview_rows

    def describe_kind(self, name: str | None, kinds: list[ModelKind]) -> str:
        """Say what a kind is and how it treats columns."""
        kind = find_kind(kinds, name)
        if kind is None:
            return ""
        return f"**{tables.escape(kind.display_name)}.** {tables.escape(kind.description)}"

    @shows_errors
    def load_csv(self, path: str | None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        """Preview an uploaded CSV, its detected column types, and offer its columns as target."""
        if not path:
            return (
                tables.empty(tables.PREVIEW_PLACEHOLDER),
                tables.empty(tables.TYPES_COLUMNS),
                gr.update(choices=[], value=None),
            )
        sample = tables.read_csv(path, nrows=tables.TYPE_SAMPLE_ROWS)
        columns = [str(c) for c in sample.columns]
        return (
            sample.head(self.preview_rows),
            tables.column_types(sample),
            gr.update(choices=columns, value=None),
        )

    def _run(self, job: Job, shown: str, columns: list[str]) -> Generator[JobUpdate, None, Job]:
        """Show a started job, then each of its events; return it in its final state."""
        yield job.job_id, tables.progress_html(job), shown, tables.empty(columns)
        if not job.finished:
            for event in self.client.events(job.job_id):
                job = event
                yield job.job_id, tables.progress_html(job), shown, gr.skip()
            if not job.finished:  # the stream ended early; ask where the job is
                job = self.client.job(job.job_id)
                yield job.job_id, tables.progress_html(job), shown, gr.skip()
        if job.state == "failed":
            message = job.error.message if job.error else "unknown error"
            raise gr.Error(
                f"Training job {job.job_id} failed: {message}",
                title="Training failed",
                print_exception=False,
            )
        return job

    @shows_errors
    def train(
        self,
        kind_name: str | None,
        kinds: list[ModelKind],
        csv_path: str | None,
        target: str | None,
        name: str,
        description: str,
        holdout: float | None,
        seed: float | None,
        *values: Any,
    ) -> Iterator[JobUpdate]:
        """Upload the CSV, start training and show its progress, then the holdout metrics."""
        kind = find_kind(kinds, kind_name)
        if kind is None:
            raise fail("Choose a model kind (if the list is empty, check the gateway).")
        if not csv_path:
            raise fail("Upload a CSV file with the training data.")
        if not target:
            raise fail("Choose the target column: the one the model should learn to predict.")
        spec = {
            "kind": kind.name,
            "target_column": target,
            "hyperparameters": forms.changed(kind.hyperparameters, values),
            "name": name.strip(),
            "description": description.strip(),
            "holdout_fraction": holdout,
            "seed": None if seed is None else int(seed),
        }
        job = self.client.train(Path(csv_path), spec)
        job = yield from self._run(job, f"Training job `{job.job_id}`…", tables.METRICS_COLUMNS)
        if job.result is None:
            yield _cancelled(job)
            return
        summary = "Trained. " + tables.version_summary(name.strip(), job.result)
        yield "", tables.progress_html(job), summary, tables.metrics_table(job.result)

    @shows_errors
    def cancel(self, job_id: str) -> None:
        """Ask the gateway to cancel the running job."""
        if not job_id:
            raise fail("No training is running.")
        self.client.cancel(job_id)
        gr.Info(f"Cancelling job {job_id}…")

    @shows_errors
    def choose_parent(self, model_id: str | None) -> tuple[str, ModelVersion | None]:
        """Show the model's latest version, the parent of a retrain, and keep it."""
        if not model_id:
            return "", None
        versions = self.client.versions(model_id)
        if not versions:
            raise fail(f"Model {model_id} has no versions left.", title="Not found")
        parent = versions[0]
        metrics = parent.metrics.accuracy if parent.metrics else None
        accuracy = "—" if metrics is None else f"{metrics:.4f}"
        text = (
            f"Retraining starts from version **{parent.version}** ({parent.kind}, accuracy "
            f"{accuracy}, {parent.train_rows} training rows). Its hyperparameters are filled "
            "in below; change any of them, and upload new data or keep the parent's."
        )
        return text, parent

    @shows_errors
    def retrain(
        self,
        parent: ModelVersion | None,
        kinds: list[ModelKind],
        csv_path: str | None,
        *values: Any,
    ) -> Iterator[JobUpdate]:
        """Start the next version, follow it, and show its metrics beside the parent's."""
        if parent is None:
            raise fail("Choose a model to retrain.")
        kind = find_kind(kinds, parent.kind)
        specs = kind.hyperparameters if kind else []
        spec = {
            "parent_version": parent.version,
            "hyperparameters": forms.changed(specs, values, parent.hyperparameters),
        }
        data = Path(csv_path) if csv_path else None
        job = self.client.retrain(parent.model_id, data, spec)
        job = yield from self._run(job, f"Retraining job `{job.job_id}`…", tables.COMPARE_COLUMNS)
        if job.result is None:
            yield _cancelled(job)
            return
        changed = forms.changed(specs, values, parent.hyperparameters)
        changes = ", ".join(f"{k} = {v}" for k, v in changed.items()) or "none"
        source = "new data" if data else "the parent's data"
        summary = (
            f"Version **{job.result.version}** of `{parent.model_id}` trained on {source}; "
            f"changed hyperparameters: {changes}."
        )
        compare = tables.compare_metrics(parent, job.result)
        yield "", tables.progress_html(job), summary, compare


def _cancelled(job: Job) -> JobUpdate:
    return "", tables.progress_html(job), f"Job `{job.job_id}` was cancelled.", gr.skip()
