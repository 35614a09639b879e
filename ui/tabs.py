"""The Train, Predict, Retrain and Delete tabs: components (with stable elem_ids for the
browser test) and their wiring. Every tab has an error area that keeps a message until the
tab's next action."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from ui import evaluation, forms, tables
from ui.handlers import Handlers
from ui.schemas import ModelKind, ModelVersion
from ui.training import Training, find_kind

# The gateway is the API; the UI's own endpoints are not offered to Gradio clients.
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
# The progress bar is the progress display; Gradio's overlay would hide it.
STREAMING: dict[str, Any] = {**PRIVATE, "show_progress": "hidden"}
# Gradio's renders share an iteration counter: two at once can drop the listener they
# registered (a Train button that does nothing), so they run one at a time.
RENDER: dict[str, Any] = {"concurrency_limit": 1}


def _table(label: str, elem_id: str, columns: list[str]) -> gr.Dataframe:
    return gr.Dataframe(tables.empty(columns), label=label, interactive=False, elem_id=elem_id)


def _hidden() -> dict[str, Any]:
    update: dict[str, Any] = gr.update(visible=False)
    return update


def _once(
    training: Training,
    handler: Callable[..., Iterator[Any]],
    around: Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]] | None = None,
) -> Callable[..., Any]:
    """The handler, run once at a time per browser session (Training.once), and `around`
    that (Handlers.forgetting_gone), so every update it yields has the same outputs."""

    # Gradio passes the request to a parameter annotated gr.Request.
    def once_per_session(request: gr.Request, *args: Any) -> Iterator[Any]:
        run = functools.partial(training.once, request.session_hash or "", handler)
        yield from (around(run) if around else run)(*args)

    return once_per_session


def error_area(prefix: str) -> gr.HTML:
    """The tab's error area: empty until something goes wrong."""
    return gr.HTML(elem_id=f"{prefix}-error")


def train_tab(training: Training, kinds: gr.State, page_load: Any) -> gr.Dropdown:
    """Lay out the Train tab; return its kind dropdown, which the status check fills."""
    job_id = gr.State("")
    with gr.Row():
        with gr.Column():
            kind = gr.Dropdown(label="Model kind", choices=[], elem_id="train-kind")
            kind_info = gr.Markdown(elem_id="train-kind-info")
            file = gr.File(label="Training data (CSV)", file_types=[".csv"], elem_id="train-file")
            target = gr.Dropdown(
                label="Target column",
                info="The column the model learns to predict.",
                choices=[],
                interactive=True,
                elem_id="train-target",
            )
            warning = gr.Markdown(elem_id="train-target-warning")
            allow = gr.Checkbox(
                label="Allow many classes (train on this target anyway)",
                visible=False,
                elem_id="train-allow-many",
            )
            with gr.Accordion("Columns", open=True):
                features = gr.CheckboxGroup(
                    label="Feature columns",
                    info="Unticked columns are left out of the model.",
                    interactive=True,
                    elem_id="train-features",
                )
                id_hint = gr.Markdown(elem_id="train-id-hint")
                with gr.Row():
                    as_categorical = gr.Dropdown(
                        label="Treat as categorical",
                        info="Numbers that are codes or labels, or amounts such as $3.50 or 12%.",
                        multiselect=True, interactive=True, elem_id="train-as-categorical",
                    )  # fmt: skip
                    as_numeric = gr.Dropdown(
                        label="Treat as numeric",
                        info="Text that holds plain numbers, not amounts such as $3.50 or 12%.",
                        multiselect=True, interactive=True, elem_id="train-as-numeric",
                    )  # fmt: skip
            name = gr.Textbox(label="Model name", interactive=True, elem_id="train-name")
            description = gr.Textbox(
                label="Description", lines=2, interactive=True, elem_id="train-description"
            )
            with gr.Accordion("Hyperparameters", open=True):
                # Each kind has its own settings, so the form is rebuilt when the kind changes;
                # the Train button is wired inside because it needs the form's components.
                @gr.render(  # type: ignore[untyped-decorator]
                    inputs=[kind, kinds], triggers=[page_load, kind.change], **RENDER
                )
                def hyperparameter_form(kind_name: str | None, kind_list: list[ModelKind]) -> None:
                    chosen = find_kind(kind_list, kind_name)
                    fields = forms.form(chosen, "train") if chosen else []
                    spec = [kind, kinds, file, target, name, description, holdout, seed]
                    spec += [features, as_categorical, as_numeric, allow]
                    start.click(
                        _once(training, training.train),
                        inputs=[*spec, *fields],
                        outputs=run_outputs,
                        # The same key on every render keeps one listener, not one per render.
                        key="train-start",
                        **STREAMING,
                    )

            with gr.Accordion("Holdout and seed", open=False):
                holdout = gr.Slider(
                    0, 0.5, value=0.2, step=0.05, label="Holdout fraction",
                    info="Share of rows kept aside to measure the metrics; 0 means no metrics.",
                    interactive=True, elem_id="train-holdout",
                )  # fmt: skip
                seed = gr.Number(
                    label="Seed", precision=0, info="Leave empty for the default seed.",
                    interactive=True, elem_id="train-seed",
                )  # fmt: skip
            # Progress and errors sit beside the buttons, where the eye is after a click.
            with gr.Row():
                start = gr.Button("Train", variant="primary", elem_id="train-button")
                cancel = gr.Button("Cancel training", variant="stop", elem_id="train-cancel")
            progress = gr.HTML(tables.progress_html(None), elem_id="train-progress")
            error = error_area("train")
        with gr.Column():
            result = gr.Markdown(elem_id="train-result")
            metrics = _table("Holdout metrics", "train-metrics", tables.METRICS_COLUMNS)
            # Beside the form, at the top, so it is in view while the model trains.
            curve = gr.HTML(evaluation.live_curve_html({}), elem_id="train-curve")
            preview = _table("First rows", "train-preview", tables.PREVIEW_PLACEHOLDER)
            types = _table("Detected column types", "train-columns", tables.TYPES_COLUMNS)

    run_outputs = [job_id, progress, result, metrics, start, curve, error]
    kind.change(training.describe_kind, [kind, kinds], kind_info, **PRIVATE)
    file.change(
        training.load_csv,
        file,
        [preview, types, target, features, as_categorical, as_numeric, id_hint, error],
        **PRIVATE,
    )
    target.change(
        training.check_target, [file, target, features], [features, warning, allow, error],
        **PRIVATE,
    )  # fmt: skip
    cancel.click(training.cancel, job_id, error, **PRIVATE)
    page_load(training.attach_train, None, run_outputs, **STREAMING)
    return kind


def predict_tab(handlers: Handlers, tab: gr.Tab) -> None:
    """Lay out the Predict tab: model and version, rows from a CSV or typed, results."""
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=[], elem_id="predict-model", scale=3)
        version = gr.Dropdown(label="Version", choices=[], elem_id="predict-version", scale=1)
    file = gr.File(label="Rows to predict (CSV)", file_types=[".csv"], elem_id="predict-file")
    rows = gr.Dataframe(
        tables.empty(tables.ROWS_PLACEHOLDER),
        label="Rows: upload a CSV or type values (add rows with the + below the table)",
        interactive=True,
        elem_id="predict-rows",
    )
    start = gr.Button("Predict", variant="primary", elem_id="predict-button")
    error = error_area("predict")
    results = _table("Predictions", "predict-results", ["Predicted label"])
    download = gr.DownloadButton(
        "Download predictions (CSV)", visible=False, elem_id="predict-download"
    )
    # Versions change in other tabs (retrain, delete), so coming back refreshes them too.
    # A model deleted elsewhere leaves the dropdown when choosing or using it says so.
    choose = handlers.forgetting_gone(handlers.choose_predict_model)
    tab.select(handlers.model_choices, model, [model, error], **PRIVATE).then(
        choose, [model, rows], [version, rows, model, error], **PRIVATE
    )
    model.change(choose, [model, rows], [version, rows, model, error], **PRIVATE)
    file.upload(handlers.load_rows, file, [rows, error], **PRIVATE)
    start.click(
        handlers.forgetting_gone(handlers.predict),
        [model, version, rows],
        [results, download, model, error],
        **PRIVATE,
    )


def retrain_tab(
    training: Training, handlers: Handlers, kinds: gr.State, tab: gr.Tab, page_load: Any
) -> None:
    """Lay out the Retrain tab: parent, optional new data and settings, new beside old."""
    job_id = gr.State("")
    parent = gr.State(None)
    with gr.Row():
        with gr.Column():
            with gr.Row():
                model = gr.Dropdown(label="Model", choices=[], elem_id="retrain-model", scale=3)
                version = gr.Dropdown(
                    label="Start from version", choices=[], elem_id="retrain-version", scale=1
                )
            parent_text = gr.Markdown(elem_id="retrain-parent")
            file = gr.File(
                label="New training data (CSV); leave empty to reuse the parent's data",
                file_types=[".csv"],
                interactive=True,
                elem_id="retrain-file",
            )
            with gr.Accordion("Hyperparameters", open=True):
                # Filled with the parent's values; only the ones changed are sent.
                @gr.render(  # type: ignore[untyped-decorator]
                    inputs=[parent, kinds],
                    triggers=[page_load, parent.change, kinds.change],
                    **RENDER,
                )
                def hyperparameter_form(
                    chosen: ModelVersion | None, kind_list: list[ModelKind]
                ) -> None:
                    kind = find_kind(kind_list, chosen.kind) if chosen else None
                    fields = (
                        forms.form(kind, "retrain", chosen.hyperparameters)
                        if kind and chosen
                        else []
                    )
                    # A parent whose model was deleted elsewhere says "not found" and
                    # takes the model out of the dropdown.
                    start.click(
                        _once(training, training.retrain, handlers.forgetting_gone),
                        inputs=[parent, kinds, file, *fields],
                        outputs=[*run_outputs[:-1], model, error],
                        key="retrain-start",
                        **STREAMING,
                    )

            with gr.Row():
                start = gr.Button("Retrain", variant="primary", elem_id="retrain-button")
                cancel = gr.Button("Cancel training", variant="stop", elem_id="retrain-cancel")
            progress = gr.HTML(tables.progress_html(None), elem_id="retrain-progress")
            error = error_area("retrain")
        with gr.Column():
            result = gr.Markdown(elem_id="retrain-result")
            compare = _table(
                "New version beside its parent", "retrain-compare", tables.COMPARE_COLUMNS
            )
            curve = gr.HTML(evaluation.live_curve_html({}), elem_id="retrain-curve")

    run_outputs = [job_id, progress, result, compare, start, curve, error]
    tab.select(handlers.model_choices, model, [model, error], **PRIVATE)
    model.change(
        handlers.forgetting_gone(training.retrain_versions),
        model,
        [version, model, error],
        **PRIVATE,
    )
    version.change(
        handlers.forgetting_gone(training.choose_parent),
        [model, version],
        [parent_text, parent, model, error],
        **PRIVATE,
    )
    cancel.click(training.cancel, job_id, error, **PRIVATE)
    page_load(training.attach_retrain, None, run_outputs, **STREAMING)


def delete_tab(handlers: Handlers, tab: gr.Tab) -> None:
    """Lay out the Delete tab: choose, confirm, see what went."""
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=[], elem_id="delete-model")
        version = gr.Dropdown(label="What to delete", choices=[], elem_id="delete-version")
    ask = gr.Button("Delete…", variant="stop", elem_id="delete-button")
    with gr.Column(visible=False) as confirm:
        question = gr.Markdown(elem_id="delete-question")
        with gr.Row():
            yes = gr.Button("Yes, delete", variant="stop", elem_id="delete-confirm")
            no = gr.Button("Keep it", elem_id="delete-keep")
    error = error_area("delete")
    result = gr.Markdown(elem_id="delete-result")
    choose = handlers.forgetting_gone(handlers.delete_choices)
    tab.select(handlers.model_choices, model, [model, error], **PRIVATE).then(
        choose, model, [version, model, error], **PRIVATE
    )
    model.change(choose, model, [version, model, error], **PRIVATE)
    # A confirmation answers one question; a new choice needs a new one.
    for changed in (model.change, version.change, no.click):
        changed(_hidden, None, confirm, **PRIVATE)
    ask.click(
        handlers.forgetting_gone(handlers.ask_delete),
        [model, version],
        [confirm, question, result, model, error],
        **PRIVATE,
    )
    yes.click(
        handlers.forgetting_gone(handlers.delete, model_at=2),
        [model, version],
        [result, confirm, model, version, error],
        **PRIVATE,
    )
