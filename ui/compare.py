"""Two versions of one model side by side: metrics, hyperparameters and curves.

The metrics table is the Retrain tab's comparison (first version, second version, change);
the curves of each version stand in a column of their own, so the same chart of the two
versions sits at the same height.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import pandas as pd

from ui import evaluation, tables
from ui.client import GatewayClient
from ui.errors import CLEAR, NotYet, inline_errors
from ui.schemas import ModelVersion

Update = dict[str, Any]
DIFFERS = "yes"


def hyperparameters_side_by_side(first: ModelVersion, second: ModelVersion) -> pd.DataFrame:
    """Every hyperparameter of either version, both values, and whether they differ."""
    names = sorted(set(first.hyperparameters) | set(second.hyperparameters))
    rows = []
    for name in names:
        left = _value(first.hyperparameters, name)
        right = _value(second.hyperparameters, name)
        rows.append([name, left, right, DIFFERS if left != right else ""])
    headers = ["Hyperparameter", f"v{first.version}", f"v{second.version}", "Differs?"]
    return pd.DataFrame(rows, columns=headers)


def _value(values: dict[str, Any], name: str) -> str:
    if name not in values:
        return tables.MISSING
    value = values[name]
    return value if isinstance(value, str) else str(value).lower()


def side_html(version: ModelVersion) -> str:
    """One version's column: a heading, then its learning curve, ROC, PR and confusion matrix."""
    heading = (
        f'<h3 class="compare-heading">Version {version.version} · '
        f"{html.escape(version.kind)} · {version.train_rows} training rows</h3>"
    )
    charts = [
        evaluation.learning_curve_html(version),
        evaluation.roc_html(version),
        evaluation.pr_html(version),
        evaluation.confusion_html(version),
    ]
    opening = f'<div class="compare-side" data-version="{version.version}">'
    return f"{opening}{heading}{''.join(charts)}</div>"


EMPTY_SIDE = '<div class="compare-side" data-version="0"></div>'
Shown = tuple[str, pd.DataFrame, pd.DataFrame, str, str, str]


class Compare:
    """Compare tab handlers bound to one gateway client."""

    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    @inline_errors(3)
    def versions(self, model_id: str | None) -> tuple[Update, Update, str]:
        """Offer the model's versions twice: the one before the latest, and the latest."""
        if not model_id:
            nothing = gr.update(choices=[], value=None)
            return nothing, nothing, CLEAR
        numbers = [v.version for v in self.client.versions(model_id)]
        choices = [(f"v{n}", n) for n in numbers]
        latest = numbers[0] if numbers else None
        before = numbers[1] if len(numbers) > 1 else latest
        return (
            gr.update(choices=choices, value=before),
            gr.update(choices=choices, value=latest),
            CLEAR,
        )

    @inline_errors(6)
    def show(self, model_id: str | None, first: int | None, second: int | None) -> Shown:
        """Show two versions next to each other, the older on the left."""
        if not model_id or not first or not second:
            return (
                "Choose a model and two of its versions.",
                tables.empty(["Metric"]),
                tables.empty(["Hyperparameter"]),
                EMPTY_SIDE,
                EMPTY_SIDE,
                CLEAR,
            )
        if first == second:
            raise NotYet("Choose two different versions to compare.", "Same version twice")
        left, right = sorted((int(first), int(second)))
        older = self.client.version(model_id, left)
        newer = self.client.version(model_id, right)
        summary = (
            f"Version **{older.version}** (left) beside version **{newer.version}** (right) "
            f"of {tables.markdown_name(older, self.client.model(model_id).name)}; "
            f"the change is from v{older.version} to v{newer.version}."
        )
        return (
            summary,
            tables.compare_metrics(older, newer, ("Version", "Version")),
            hyperparameters_side_by_side(older, newer),
            side_html(older),
            side_html(newer),
            CLEAR,
        )
