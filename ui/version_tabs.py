"""The Models and Compare tabs: every version in a table, one version in detail with its
curves and confusion matrix, and two versions of a model side by side."""

from __future__ import annotations

import gradio as gr

from ui import charts, evaluation, tables
from ui.compare import EMPTY_SIDE, Compare
from ui.handlers import Handlers
from ui.tabs import PRIVATE, error_area


def _table(label: str, elem_id: str, columns: list[str]) -> gr.Dataframe:
    return gr.Dataframe(tables.empty(columns), label=label, interactive=False, elem_id=elem_id)


def _chart(html: str, elem_id: str) -> gr.HTML:
    return gr.HTML(html, elem_id=elem_id, elem_classes=["chart-box"])


def models_tab(handlers: Handlers, tab: gr.Tab) -> None:
    """Lay out the Models tab: every version in a table, one version in detail."""
    error = error_area("models")
    with gr.Row():
        pick = gr.Dropdown(label="Model version", choices=[], elem_id="models-version", scale=4)
        refresh = gr.Button("Refresh", elem_id="models-refresh", scale=1)
    table = _table("Models and versions", "models-table", tables.MODELS_COLUMNS)
    summary = gr.Markdown(elem_id="models-summary")
    with gr.Row():
        metrics = _table("Holdout metrics", "models-metrics", tables.METRICS_COLUMNS)
        importance = gr.HTML(charts.importance_html(None), elem_id="models-importance")
    with gr.Row():
        learning = _chart(evaluation.learning_curve_html(None), "models-learning-curve")
        confusion = _chart(evaluation.confusion_html(None), "models-confusion")
    with gr.Row():
        roc = _chart(evaluation.roc_html(None), "models-roc")
        pr = _chart(evaluation.pr_html(None), "models-pr")
    with gr.Row():
        hyperparameters = _table(
            "Hyperparameters", "models-hyperparameters", tables.HYPERPARAMETER_COLUMNS
        )
        signature = _table(
            "Signature: the columns it expects", "models-signature", tables.SIGNATURE_COLUMNS
        )
    for trigger in (refresh.click, tab.select):
        trigger(handlers.refresh_models, pick, [table, pick, error], **PRIVATE)
    shown = [summary, metrics, hyperparameters, signature, importance]
    shown += [learning, roc, pr, confusion, error]
    pick.change(handlers.show_version, pick, shown, **PRIVATE)


def compare_tab(compare: Compare, handlers: Handlers, tab: gr.Tab) -> None:
    """Lay out the Compare tab: a model, two of its versions, and the two side by side."""
    error = error_area("compare")
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=[], elem_id="compare-model", scale=3)
        first = gr.Dropdown(label="Version", choices=[], elem_id="compare-first", scale=1)
        second = gr.Dropdown(label="Beside version", choices=[], elem_id="compare-second", scale=1)
    summary = gr.Markdown(elem_id="compare-summary")
    with gr.Row():
        metrics = _table("Holdout metrics", "compare-metrics", ["Metric"])
        hyperparameters = _table("Hyperparameters", "compare-hyperparameters", ["Hyperparameter"])
    with gr.Row():
        left = gr.HTML(EMPTY_SIDE, elem_id="compare-left")
        right = gr.HTML(EMPTY_SIDE, elem_id="compare-right")
    tab.select(handlers.model_choices, model, [model, error], **PRIVATE)
    model.change(compare.versions, model, [first, second, error], **PRIVATE)
    shown = [summary, metrics, hyperparameters, left, right, error]
    for changed in (first.change, second.change):
        changed(compare.show, [model, first, second], shown, **PRIVATE)
