"""Event handlers of the Models, Predict and Delete tabs and the gateway status line.

Each returns what the person sees next (tables, texts, gr.update dicts) and, last, the text
of its tab's error area, so all of it runs without a browser or a server.
"""

from __future__ import annotations

import functools
import inspect
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ui import charts, evaluation, tables
from ui.client import GatewayClient, GatewayError, GatewayUnreachable
from ui.errors import CLEAR, SHOWN, NotYet, describe, inline_errors
from ui.schemas import ModelKind, ModelVersion

LATEST = 0
WHOLE_MODEL = 0
Update = dict[str, Any]
# Summary, metrics, hyperparameters, signature, importance, learning curve, ROC, PR,
# confusion matrix and the error area.
VersionShown = tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame, str, str, str, str, str, str]
# Prediction downloads older than this are removed, so the directory cannot grow forever.
DOWNLOAD_KEEP_SECONDS = 3600.0


def version_key(model_id: str, version: int) -> str:
    """Encode a model version as one dropdown value."""
    return f"{model_id}:{version}"


def parse_version_key(key: str) -> tuple[str, int]:
    """Decode a dropdown value made by version_key."""
    model_id, _, version = key.rpartition(":")
    return model_id, int(version)


class Handlers:
    """Every handler of the UI that is not a training run, bound to one gateway client."""

    def __init__(self, client: GatewayClient, *, max_table_rows: int = 10_000) -> None:
        self.client = client
        self.max_table_rows = max_table_rows
        self._downloads = Path(tempfile.mkdtemp(prefix="mlops-ui-"))

    # Status and choices shared by the tabs.

    def status(self, kind: str | None = None) -> tuple[str, list[ModelKind], dict[str, Any]]:
        """Check the gateway; return the status line, the kinds and the kind dropdown.

        The chosen kind stays chosen while the gateway still offers it.
        """
        url = self.client.url
        try:
            kinds = self.client.kinds()
        except GatewayError as error:
            gr.Warning(error.message, title="Gateway")
            return f"**Not connected.** {error.message}", [], gr.update(choices=[], value=None)
        try:
            self.client.ready()
            line = f"**Connected** to the gateway at {url}; the model service is ready."
        except GatewayUnreachable as error:
            line = f"**Not connected.** {error.message}"
        except GatewayError as error:
            line = f"**Not ready.** The gateway at {url} answers, but: {error.message}"
        names = [k.name for k in kinds]
        choice = kind if kind in names else (names[0] if names else None)
        choices = [(k.display_name, k.name) for k in kinds]
        return line, kinds, gr.update(choices=choices, value=choice)

    @inline_errors(2)
    def model_choices(self, current: str | None = None) -> tuple[Update, str]:
        """Refresh a model dropdown, keeping the current choice while it still exists."""
        models = self.client.models()
        ids = {m.model_id for m in models}
        update = gr.update(
            choices=[(tables.model_label(m), m.model_id) for m in models],
            value=current if current in ids else None,
        )
        return update, CLEAR

    def forgetting_gone(
        self, handler: Callable[..., Any], *, model_at: int | None = None
    ) -> Callable[..., Any]:
        """`handler` (chosen model first, error area last) that also refreshes the model
        dropdown when it shows an error and the chosen model is no longer listed.

        A model deleted elsewhere (another tab, REST, a script) stayed on offer until the
        tab was left and opened again. The dropdown is one more output, before the error
        area, or the handler's own output at `model_at`. The chosen model is its id, or a
        version of it (Retrain's parent); a generator handler (Retrain) is checked at each
        update it yields.
        """

        def forget(chosen: str | ModelVersion | None, update: Iterable[Any]) -> tuple[Any, ...]:
            shown = list(update)
            model_id = chosen.model_id if isinstance(chosen, ModelVersion) else chosen
            gone = False
            if shown[-1] and model_id:
                models, failed = self.model_choices(model_id)
                # Listing can fail too (gateway down); then the handler's message is enough.
                gone = not failed and models["value"] is None
            if model_at is None:
                return (*shown[:-1], models if gone else gr.skip(), shown[-1])
            if gone:
                shown[model_at] = models
            return tuple(shown)

        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def each(chosen: str | ModelVersion | None, *args: Any) -> Iterator[tuple[Any, ...]]:
                for update in handler(chosen, *args):
                    yield forget(chosen, update)

            return each

        @functools.wraps(handler)
        def wrapped(chosen: str | ModelVersion | None, *args: Any) -> tuple[Any, ...]:
            return forget(chosen, handler(chosen, *args))

        return wrapped

    def _version_choices(
        self, model_id: str, first: tuple[str, int]
    ) -> tuple[dict[str, Any], list[ModelVersion]]:
        versions = self.client.versions(model_id)
        choices = [first] + [(f"v{v.version}", v.version) for v in versions]
        return gr.update(choices=choices, value=first[1]), versions

    # Models tab.

    @inline_errors(3)
    def refresh_models(self, current: str | None) -> tuple[pd.DataFrame, Update, str]:
        """Load the table of models and versions and the version picker."""
        listed = self.client.models()
        found = {m.model_id: self._versions_if_kept(m.model_id) for m in listed}
        # A model deleted between the two reads (by another person, REST, a script) is left
        # out, rather than the whole table failing "not found".
        models = [m for m in listed if found[m.model_id] is not None]
        versions = {key: kept for key, kept in found.items() if kept is not None}
        choices = [
            (f"{tables.model_name(m)} · v{v.version}", version_key(m.model_id, v.version))
            for m in models
            for v in versions[m.model_id]
        ]
        keys = {key for _, key in choices}
        if current not in keys:
            current = choices[0][1] if choices else None
        table = tables.models_table(models, versions)
        return table, gr.update(choices=choices, value=current), CLEAR

    def _versions_if_kept(self, model_id: str) -> list[ModelVersion] | None:
        try:
            return self.client.versions(model_id)
        except GatewayError as error:
            if error.problem.status == 404:
                return None
            raise

    @inline_errors(10)
    def show_version(self, key: str | None) -> VersionShown:
        """Show one version: summary, metrics, hyperparameters, signature, importance, and
        its learning curve, ROC and precision-recall curves and confusion matrix."""
        if not key:
            return (
                "Choose a model version to see its details.",
                tables.empty(tables.METRICS_COLUMNS),
                tables.empty(tables.HYPERPARAMETER_COLUMNS),
                tables.empty(tables.SIGNATURE_COLUMNS),
                charts.importance_html(None),
                *_curves(None),
                CLEAR,
            )
        model_id, number = parse_version_key(key)
        version = self.client.version(model_id, number)
        return (
            tables.version_summary(self.client.model(model_id).name, version),
            tables.metrics_table(version),
            tables.hyperparameters_table(version),
            tables.signature_table(version),
            charts.importance_html(version),
            *_curves(version),
            CLEAR,
        )

    # Predict tab.

    @inline_errors(3)
    def choose_predict_model(
        self, model_id: str | None, rows: pd.DataFrame | None
    ) -> tuple[Update, pd.DataFrame | Update, str]:
        """Offer the model's versions; an empty table gets one blank row of its features."""
        if not model_id:
            # Emptied by the page (the chosen model was deleted), not by the person: the
            # message saying so stays.
            return gr.update(choices=[], value=None), gr.skip(), gr.skip()
        choices, versions = self._version_choices(model_id, ("latest", LATEST))
        if not versions or (rows is not None and not _blank(rows)):
            return choices, gr.skip(), CLEAR
        features = [f.name for f in versions[0].signature.features]
        return choices, pd.DataFrame([[""] * len(features)], columns=features), CLEAR

    @inline_errors(2)
    def load_rows(self, path: str | None) -> tuple[pd.DataFrame | Update, str]:
        """Put an uploaded CSV into the editable table (up to max_table_rows rows)."""
        if not path:
            return gr.skip(), CLEAR
        frame = tables.read_csv(path, nrows=self.max_table_rows + 1)
        if len(frame) > self.max_table_rows:
            gr.Warning(
                f"Only the first {self.max_table_rows} rows were loaded; use the REST API "
                "(POST /v1/models/{id}/predict) to score bigger files."
            )
            frame = frame.head(self.max_table_rows)
        return frame, CLEAR

    def predict(
        self, model_id: str | None, version: int | None, rows: pd.DataFrame | None
    ) -> tuple[pd.DataFrame, Update, str]:
        """Predict the table's rows; return the results, the CSV download and the error area.

        A failure clears the results and hides the download, so nothing stale is left to
        mistake for the answer to these rows.
        """
        try:
            return self._predict(model_id, version, rows)
        except SHOWN as error:
            sent = None if rows is None else rows.replace("", None).dropna(how="all")
            shown = describe(error, sent)
        return tables.empty(["Predicted label"]), gr.update(value=None, visible=False), shown

    def _predict(
        self, model_id: str | None, version: int | None, rows: pd.DataFrame | None
    ) -> tuple[pd.DataFrame, Update, str]:
        if not model_id:
            raise NotYet("Choose a model to predict with.")
        if rows is None or _blank(rows):
            raise NotYet("Add at least one row: upload a CSV or type values into the table.")
        rows = rows.replace("", None).dropna(how="all")
        answer = self.client.predict(model_id, int(version or LATEST), tables.to_csv(rows))
        used = self.client.version(model_id, answer.version)
        result = tables.predictions_table(rows, answer, used.signature.target_column)
        path = self._write_download(result, f"predictions-{model_id}-v{answer.version}.csv")
        gr.Info(f"Predicted {len(result)} rows with version {answer.version}.")
        return result, gr.update(value=str(path), visible=True), CLEAR

    def _write_download(self, frame: pd.DataFrame, name: str) -> Path:
        cutoff = time.time() - DOWNLOAD_KEEP_SECONDS
        for old in self._downloads.glob("*/*.csv"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
                old.parent.rmdir()
        # One directory per download keeps the friendly name without clashes between sessions.
        path = Path(tempfile.mkdtemp(dir=self._downloads)) / name
        path.write_bytes(tables.to_csv(frame))
        return path

    # Delete tab.

    @inline_errors(2)
    def delete_choices(self, model_id: str | None) -> tuple[Update, str]:
        """Offer one version (the latest first) or, last, the whole model."""
        if not model_id:
            # Emptied by the page (the chosen model was deleted), not by the person: the
            # message saying so stays.
            return gr.update(choices=[], value=None), gr.skip()
        versions = self.client.versions(model_id)
        choices = [(f"Version {v.version} only", v.version) for v in versions]
        choices.append(("All versions: the whole model", WHOLE_MODEL))
        # One version is the smaller loss, so it is what a hurried click deletes.
        return gr.update(choices=choices, value=choices[0][1]), CLEAR

    @inline_errors(4)
    def ask_delete(self, model_id: str | None, version: int | None) -> tuple[Update, str, str, str]:
        """Show the confirmation, saying exactly what will be deleted; clear the last result."""
        if not model_id:
            raise NotYet("Choose a model to delete.")
        model = self.client.model(model_id)
        named = tables.markdown_name(model)
        if not version:
            what = f"model {named} with all its {model.version_count} version(s)"
        else:
            what = f"version **{version}** of model {named}"
            if model.version_count == 1:
                what += "; it is the only version, so the model goes too"
        question = f"Delete {what}? This cannot be undone."
        return gr.update(visible=True), question, CLEAR, CLEAR

    @inline_errors(5)
    def delete(
        self, model_id: str | None, version: int | None
    ) -> tuple[str, Update, Update, Update, str]:
        """Delete; return the result, the hidden confirmation and refreshed pickers."""
        if not model_id:
            raise NotYet("Choose a model to delete.")
        if not version:
            count = self.client.delete_model(model_id)
            message = f"Deleted model `{model_id}` and its {count} version(s)."
        elif self.client.delete_version(model_id, int(version)):
            message = f"Deleted version {version}, the last one, so model `{model_id}` is gone."
        else:
            message = f"Deleted version {version} of model `{model_id}`."
        models, _ = self.model_choices(model_id)
        still_there = models["value"] is not None
        versions = self.delete_choices(model_id)[0] if still_there else gr.update(choices=[])
        return message, gr.update(visible=False), models, versions, CLEAR


def _curves(version: ModelVersion | None) -> tuple[str, str, str, str]:
    """A version's learning curve, ROC curve, precision-recall curve and confusion matrix."""
    return (
        evaluation.learning_curve_html(version),
        evaluation.roc_html(version),
        evaluation.pr_html(version),
        evaluation.confusion_html(version),
    )


def _blank(rows: pd.DataFrame) -> bool:
    return rows.empty or bool(rows.replace("", None).isna().all().all())
