"""Event handlers of the Train and Retrain tabs: uploads, columns, and jobs followed live.

The training handlers are generators: each job event from the gateway's Server-Sent Events
becomes one update of the progress bar and of the live learning curve, and the last one
carries the result. Every update also sets the start button (disabled while its job runs)
and the tab's error area.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ui import columns, forms, tables
from ui.client import GatewayClient
from ui.errors import CLEAR, SHOWN, NotYet, describe, inline_errors
from ui.job_updates import (
    NO_CHANGE,
    JobUpdate,
    Points,
    Update,
    add_points,
    button,
    ended,
    final_curve,
    nothing,
)
from ui.schemas import Job, ModelKind, ModelVersion


def find_kind(kinds: Sequence[ModelKind], name: str | None) -> ModelKind | None:
    """Return the kind called `name`, if the gateway offers it."""
    return next((kind for kind in kinds if kind.name == name), None)


class Training:
    """Train and retrain handlers bound to one gateway client."""

    def __init__(self, client: GatewayClient, *, preview_rows: int = 10) -> None:
        self.client = client
        self.preview_rows = preview_rows
        # (browser session, handler) pairs with a start handler running.
        self._starting: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def once(
        self, session: str, handler: Callable[..., Iterator[JobUpdate]], *args: Any
    ) -> Iterator[JobUpdate]:
        """Run a start handler (train, retrain) unless this session already runs it.

        A double-click's second click reaches the server before the first has disabled the
        button, and started a second job: a second model the page never showed.
        """
        key = (session, handler.__name__)
        with self._lock:
            if key in self._starting:
                yield NO_CHANGE
                return
            self._starting.add(key)
        try:
            yield from handler(*args)
        finally:
            with self._lock:
                self._starting.discard(key)

    def describe_kind(self, name: str | None, kinds: list[ModelKind]) -> str:
        """Say what a kind is and how it treats columns."""
        kind = find_kind(kinds, name)
        if kind is None:
            return ""
        return f"**{tables.escape(kind.display_name)}.** {tables.escape(kind.description)}"

    @inline_errors(8)
    def load_csv(self, path: str | None) -> tuple[Any, ...]:
        """Preview a CSV and its column types; offer its columns as target and features."""
        if not path:
            nothing = gr.update(choices=[], value=[])
            return (
                tables.empty(tables.PREVIEW_PLACEHOLDER),
                tables.empty(tables.TYPES_COLUMNS),
                gr.update(choices=[], value=None),
                nothing,
                nothing,
                nothing,
                "",
                CLEAR,
            )
        sample = tables.read_csv(path, nrows=tables.TYPE_SAMPLE_ROWS)
        names = [str(c) for c in sample.columns]
        numeric = [c for c in names if tables.detected_type(sample[c]) == "numeric"]
        text = [c for c in names if c not in numeric]
        # Text of "$3.50" or "12%": the service trains on it only if declared categorical (as
        # numeric it refuses it). Amounts all different are amounts, not identifiers: they
        # stay ticked.
        decorated = columns.decorated(sample)
        ids = [c for c in columns.id_like(sample) if c not in decorated]
        hints = []
        if ids:
            listed = ", ".join(f"'{c}'" for c in ids)
            hints.append(
                f"Every value of {listed} is different, so it looks like an identifier and "
                "is left out of the features; tick it to use it anyway."
            )
        if decorated:
            hints.append(tables.escape(columns.decorated_hint(decorated)))
        return (
            sample.head(self.preview_rows),
            tables.column_types(sample),
            gr.update(choices=names, value=None),
            gr.update(choices=names, value=[c for c in names if c not in ids]),
            gr.update(choices=[c for c in names if c in numeric or c in decorated], value=[]),
            gr.update(choices=[c for c in text if c not in decorated], value=[]),
            "\n\n".join(hints),
            CLEAR,
        )

    @inline_errors(4)
    def check_target(
        self, path: str | None, target: str | None, chosen: list[str]
    ) -> tuple[Update, str, Update, str]:
        """Drop the target from the features and warn when it looks continuous or like an id."""
        if not path or not target:
            return gr.skip(), "", gr.update(visible=False, value=False), CLEAR
        sample = tables.read_csv(path, nrows=tables.TYPE_SAMPLE_ROWS)
        names = [str(c) for c in sample.columns if c != target]
        features = gr.update(choices=names, value=[c for c in chosen if c != target])
        problem = columns.target_problem(sample, target)
        if not problem:
            return features, "", gr.update(visible=False, value=False), CLEAR
        warning = f"**This target looks continuous or like an identifier.** {problem} "
        warning += columns.RULE + " Choose another target, or tick *Allow many classes*."
        return features, warning, gr.update(visible=True), CLEAR

    def _run(
        self, job: Job, shown: str, table: list[str], label: str
    ) -> Generator[JobUpdate, None, Job]:
        """Show a started job, then each of its events; return it in its final state."""
        busy = button(label, True)
        points: Points = {}
        curve = add_points(points, job)
        yield job.job_id, tables.progress_html(job), shown, tables.empty(table), busy, curve, CLEAR
        if not job.finished:
            for event in self.client.events(job.job_id):
                job = event
                curve = add_points(points, job)
                bar = tables.progress_html(job)
                yield job.job_id, bar, shown, gr.skip(), busy, curve, CLEAR
            if not job.finished:  # the stream ended early; ask where the job is
                job = self.client.job(job.job_id)
        return job

    def _guarded(self, label: str, run: Callable[[], Iterator[JobUpdate]]) -> Iterator[JobUpdate]:
        """Run a training generator; on an error, show it and give the button back."""
        try:
            yield from run()
        except SHOWN as error:
            free = button(label, False)
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), free, gr.skip(), describe(error)

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
        chosen: list[str] | None,
        as_categorical: list[str] | None,
        as_numeric: list[str] | None,
        allow_many_classes: bool,
        *values: Any,
    ) -> Iterator[JobUpdate]:
        """Upload the CSV, start training and show its progress, then the holdout metrics."""

        def run() -> Iterator[JobUpdate]:
            kind = find_kind(kinds, kind_name)
            if kind is None:
                raise NotYet("Choose a model kind (if the list is empty, check the gateway).")
            if not csv_path:
                raise NotYet("Upload a CSV file with the training data.")
            if not target:
                raise NotYet("Choose the target column: the one the model learns to predict.")
            header = [str(c) for c in tables.read_csv(csv_path, nrows=1).columns]
            features, types = columns.features_and_types(
                header, target, list(chosen or header), as_categorical or [], as_numeric or []
            )
            if chosen is not None and not [c for c in chosen if c != target]:
                raise NotYet("Tick at least one feature column.")
            spec = {
                "kind": kind.name,
                "target_column": target,
                "hyperparameters": forms.changed(kind.hyperparameters, values),
                "name": name.strip(),
                "description": description.strip(),
                "holdout_fraction": holdout,
                "seed": None if seed is None else int(seed),
                "feature_columns": features or None,
                "feature_types": types or None,
                "allow_many_classes": True if allow_many_classes else None,
            }
            job = self.client.train(Path(csv_path), spec)
            yield from self._follow_train(job)

        yield from self._guarded("Train", run)

    def _follow_train(self, job: Job) -> Iterator[JobUpdate]:
        shown = f"Training job `{job.job_id}`…"
        job = yield from self._run(job, shown, tables.METRICS_COLUMNS, "Train")
        last = ended(job, "Train")
        if last is not None or job.result is None:
            yield last or nothing("Train")
            return
        name = self.client.model(job.result.model_id).name
        summary = "Trained. " + tables.version_summary(name, job.result)
        table = tables.metrics_table(job.result)
        bar, free = tables.progress_html(job), button("Train", False)
        yield "", bar, summary, table, free, final_curve(job.result), CLEAR

    def _running(self, retrain: bool) -> Job | None:
        jobs = [j for j in self.client.jobs() if not j.finished]
        return next((j for j in jobs if (j.parent_version > 0) == retrain), None)

    def attach_train(self) -> Iterator[JobUpdate]:
        """On page load, follow the newest new-model job still running, if any."""

        def run() -> Iterator[JobUpdate]:
            job = self._running(retrain=False)
            if job is None:
                yield NO_CHANGE  # Gradio blanks the outputs of a generator that yields nothing
            else:
                yield from self._follow_train(job)

        yield from self._guarded("Train", run)

    def attach_retrain(self) -> Iterator[JobUpdate]:
        """On page load, follow the newest retraining job still running, if any."""

        def run() -> Iterator[JobUpdate]:
            job = self._running(retrain=True)
            if job is None:
                yield NO_CHANGE
            else:
                parent = self.client.version(job.model_id, job.parent_version)
                yield from self._follow_retrain(job, parent, "", {})

        yield from self._guarded("Retrain", run)

    @inline_errors(1)
    def cancel(self, job_id: str) -> str:
        """Ask the gateway to cancel the running job."""
        if not job_id:
            raise NotYet("No training is running.")
        self.client.cancel(job_id)
        gr.Info(f"Cancelling job {job_id}…")
        return CLEAR

    @inline_errors(2)
    def retrain_versions(self, model_id: str | None) -> tuple[Update, str]:
        """Offer the model's versions to start from, the latest chosen."""
        if not model_id:
            # Emptied by the page (the chosen model was deleted): the message stays.
            return gr.update(choices=[], value=None), gr.skip()
        versions = self.client.versions(model_id)
        choices = [(f"v{v.version}", v.version) for v in versions]
        return gr.update(choices=choices, value=choices[0][1] if choices else None), CLEAR

    @inline_errors(3)
    def choose_parent(
        self, model_id: str | None, number: int | None
    ) -> tuple[str, ModelVersion | None, str]:
        """Show the version a retrain starts from, and keep it."""
        if not model_id or not number:
            return "", None, gr.skip()
        parent = self.client.version(model_id, int(number))
        metrics = parent.metrics.accuracy if parent.metrics else None
        accuracy = "—" if metrics is None else f"{metrics:.4f}"
        text = (
            f"Retraining starts from version **{parent.version}** ({parent.kind}, accuracy "
            f"{accuracy}, {parent.train_rows} training rows). Its hyperparameters are filled "
            "in below; change any of them, and upload new data or keep the parent's."
        )
        return text, parent, CLEAR

    def retrain(
        self,
        parent: ModelVersion | None,
        kinds: list[ModelKind],
        csv_path: str | None,
        *values: Any,
    ) -> Iterator[JobUpdate]:
        """Start the next version, follow it, and show its metrics beside the parent's."""

        def run() -> Iterator[JobUpdate]:
            if parent is None:
                raise NotYet("Choose a model to retrain.")
            kind = find_kind(kinds, parent.kind)
            specs = kind.hyperparameters if kind else []
            changed = forms.changed(specs, values, parent.hyperparameters)
            spec = {"parent_version": parent.version, "hyperparameters": changed}
            data = Path(csv_path) if csv_path else None
            job = self.client.retrain(parent.model_id, data, spec)
            source = "new data" if data else "the parent's data"
            yield from self._follow_retrain(job, parent, source, changed)

        yield from self._guarded("Retrain", run)

    def _follow_retrain(
        self, job: Job, parent: ModelVersion, source: str, changed: dict[str, Any]
    ) -> Iterator[JobUpdate]:
        shown = f"Retraining job `{job.job_id}` from version {parent.version}…"
        job = yield from self._run(job, shown, tables.COMPARE_COLUMNS, "Retrain")
        last = ended(job, "Retrain")
        if last is not None or job.result is None:
            yield last or nothing("Retrain")
            return
        changes = ", ".join(f"{k} = {v}" for k, v in changed.items()) or "none"
        summary = f"Version **{job.result.version}** of `{parent.model_id}` trained"
        summary += f" on {source}" if source else ""
        summary += f" from version {parent.version}; changed hyperparameters: {changes}."
        compare = tables.compare_metrics(parent, job.result)
        bar, free = tables.progress_html(job), button("Retrain", False)
        yield "", bar, summary, compare, free, final_curve(job.result), CLEAR
