"""How a version learned and how it does on its holdout: learning curves, ROC and
precision-recall curves, and the confusion matrix, as HTML the Models and Compare tabs show."""

from __future__ import annotations

import html
from collections.abc import Mapping

from ui import svg
from ui.schemas import Curve, ModelVersion

LEARNING = "Learning curve"
ROC = "ROC curve (holdout)"
PR = "Precision-recall curve (holdout)"
CONFUSION = "Confusion matrix (holdout)"
NO_VERSION = "Choose a model version to see it."
NO_HOLDOUT = "No holdout: no evaluation. This version was trained with no rows held out."
NOT_RECORDED = "Not recorded: this version was trained before learning curves were kept."
NOT_EVALUATED = "Not recorded: this version was trained before evaluations were kept."
# Live points: iteration -> {metric name -> value}, as the job's progress events carry them.
Points = Mapping[int, Mapping[str, float | None]]


def metric_label(name: str) -> str:
    """Name a loss series for a legend: learn_Logloss is "training Logloss"."""
    for prefix, said in (("learn_", "training "), ("holdout_", "holdout ")):
        if name.startswith(prefix):
            return said + name.removeprefix(prefix)
    return name


def _loss_chart(
    chart: str, title: str, iterations: list[int], series: Mapping[str, list[float | None]]
) -> str:
    lines = [
        svg.Series(metric_label(name), iterations, values, dashed=name.startswith("holdout_"))
        for name, values in series.items()
    ]
    return svg.line_chart(chart, title, lines, "Iteration", "Loss")


def learning_curve_html(version: ModelVersion | None, title: str = LEARNING) -> str:
    """The losses a version recorded per iteration, or why there are none."""
    if version is None:
        return svg.note("learning", title, NO_VERSION)
    curve = version.learning_curve
    if curve is None or not curve.series:
        return svg.note("learning", title, NOT_RECORDED)
    return _loss_chart("learning", title, curve.iterations, curve.series)


def live_curve_html(points: Points) -> str:
    """The losses of a running job so far, one line per metric."""
    title = "Learning curve (live)"
    if not points:
        return svg.note("live", title, "The losses appear here as the model trains.")
    iterations = sorted(points)
    names = list(dict.fromkeys(name for i in iterations for name in points[i]))
    series = {name: [points[i].get(name) for i in iterations] for name in names}
    return _loss_chart("live", title, iterations, series)


def _no_evaluation(version: ModelVersion) -> str:
    """Why a version has no evaluation: no holdout, or (rows held out) an older service."""
    return NOT_EVALUATED if version.holdout_rows else NO_HOLDOUT


def _curve_label(curve: Curve, area: str, binary: bool) -> str:
    shown = "—" if curve.area is None else f"{curve.area:.3f}"
    name = f"class {curve.class_name}" if binary else curve.class_name
    return f"{name} ({area} {shown})" if curve.class_name else f"{area} {shown}"


def _curves_html(version: ModelVersion | None, kind: str, title: str) -> str:
    if version is None:
        return svg.note(kind, title, NO_VERSION)
    if version.evaluation is None:
        return svg.note(kind, title, _no_evaluation(version))
    curves = [c for c in version.evaluation.curves if c.kind == kind]
    binary = len(curves) == 1
    area = "AUC" if kind == "roc" else "AP"
    lines = [svg.Series(_curve_label(c, area, binary), c.x, c.y) for c in curves]
    if kind == "roc":
        axes = ("False-positive rate", "True-positive rate")
    else:
        axes = ("Recall", "Precision")
    return svg.line_chart(
        kind, title, lines, *axes, x_range=(0, 1), y_range=(0, 1), diagonal=kind == "roc"
    )


def roc_html(version: ModelVersion | None) -> str:
    """The ROC curves of a version: one for binary, one per class (one-vs-rest) otherwise."""
    return _curves_html(version, "roc", ROC)


def pr_html(version: ModelVersion | None) -> str:
    """The precision-recall curves of a version, with each curve's average precision."""
    return _curves_html(version, "pr", PR)


def confusion_html(version: ModelVersion | None) -> str:
    """The confusion matrix as a heat map: true classes down, predicted classes across.

    A cell's shade is its share of its row (of that true class), so a small class's mistakes
    stand out as much as a big one's; the count is written in every cell.
    """
    if version is None:
        return svg.note("confusion", CONFUSION, NO_VERSION)
    if version.evaluation is None or not version.evaluation.confusion_matrix:
        return svg.note("confusion", CONFUSION, _no_evaluation(version))
    matrix = version.evaluation.confusion_matrix
    classes = version.signature.classes
    names = [html.escape(classes[i] if i < len(classes) else str(i)) for i in range(len(matrix))]
    head = "".join(f'<th scope="col">{name}</th>' for name in names)
    rows = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        cells = []
        for j, count in enumerate(row):
            share = count / total
            ink = "#ffffff" if share > 0.55 else "inherit"
            role = "hit" if i == j else "miss"
            cells.append(
                f'<td class="cm-{role}" data-true="{names[i]}" data-predicted="{names[j]}" '
                f'style="background: rgba(78, 121, 167, {share:.2f}); color: {ink}">{count}</td>'
            )
        rows.append(f'<tr><th scope="row">{names[i]}</th>{"".join(cells)}</tr>')
    cells_total = sum(sum(row) for row in matrix)
    return (
        f'<figure class="chart confusion" data-chart="confusion" data-classes="{len(matrix)}" '
        f'data-total="{cells_total}"><figcaption class="chart-title">{CONFUSION}</figcaption>'
        '<p class="cm-axes">Rows: true class · Columns: predicted class · shade: share of the '
        'row</p><div class="cm-scroll"><table class="cm"><thead><tr><th class="cm-corner">'
        f"True ↓ / Predicted →</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</div></figure>"
    )
