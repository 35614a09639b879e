"""Learning curves, ROC and PR curves, confusion matrices and the comparison of two versions,
read from the HTML the way a person reads the charts: lines, legends, axis titles, cells."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import httpx

from tests.ui.fakes import (
    MULTICLASS_EVALUATION,
    PENGUINS,
    FakeGateway,
    alert,
    evaluated,
    fitting,
    job,
    sse,
    version,
)
from tests.ui.test_training import KIND_LIST, start_training
from ui.compare import Compare
from ui.handlers import Handlers
from ui.schemas import ModelVersion
from ui.training import Training

LOSSES = {"learn_MultiClass": 0.9, "holdout_MultiClass": 1.0}
LEARNING_OK = {"iterations": [1, 2], "series": {"learn_Logloss": [0.7, 0.5],
                                                 "holdout_Logloss": [0.8, 0.6]}}  # fmt: skip


@dataclass
class Chart:
    """What a chart shows: its title, lines (label -> points on screen), axes, legend, note."""

    kind: str
    title: str
    lines: dict[str, list[tuple[float, float]]]
    axes: list[str]
    legend: list[str]
    note: str


def chart(shown: str) -> Chart:
    """Read one chart of ui.svg back from its HTML."""
    kind = re.search(r'data-chart="(\w+)"', shown)
    title = re.search(r'<figcaption class="chart-title">([^<]*)<', shown)
    assert kind and title, shown
    lines = {
        html.unescape(label): [
            (float(x), float(y)) for x, y in (p.split(",") for p in points.split())
        ]
        for label, points in re.findall(
            r'<polyline class="line" data-label="([^"]*)" data-points="\d+" points="([^"]*)"',
            shown,
        )
    }
    axes = [html.unescape(t) for t in re.findall(r'class="axis-title"[^>]*>([^<]*)<', shown)]
    legend = [html.unescape(t) for t in re.findall(r"</span>([^<]*)</li>", shown)]
    note = re.search(r'<p class="chart-(?:note|empty)">([^<]*)<', shown)
    return Chart(kind[1], html.unescape(title[1]), lines, axes, legend, note[1] if note else "")


def cells(shown: str) -> dict[tuple[str, str], int]:
    """The confusion matrix's counts by (true class, predicted class)."""
    found = re.findall(r'data-true="([^"]*)" data-predicted="([^"]*)"[^>]*>(\d+)<', shown)
    return {(t, p): int(count) for t, p, count in found}


def test_the_models_tab_draws_a_versions_learning_curve_roc_pr_and_confusion_matrix(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.routes[("GET", "/v1/models/m-1/versions/3")] = evaluated(3)
    *_, learning, roc, pr, confusion, error = handlers.show_version("m-1:3")
    assert error == ""
    curve = chart(learning)
    assert curve.axes == ["Iteration", "Loss"]
    assert set(curve.lines) == {"training Logloss", "holdout Logloss"}
    training_line = curve.lines["training Logloss"]
    assert len(training_line) == 3
    assert training_line[0][1] < training_line[-1][1]  # the loss falls: lower on the screen
    roc_chart = chart(roc)
    assert roc_chart.axes == ["False-positive rate", "True-positive rate"]
    assert roc_chart.legend == ["class yes (AUC 0.930)"]
    (points,) = roc_chart.lines.values()
    assert points[0][1] > points[-1][1] and points[0][0] < points[-1][0]  # bottom-left to top-right
    pr_chart = chart(pr)
    assert pr_chart.axes == ["Recall", "Precision"] and pr_chart.legend == ["class yes (AP 0.880)"]
    assert cells(confusion) == {("no", "no"): 12, ("no", "yes"): 1, ("yes", "no"): 3,
                                ("yes", "yes"): 20}  # fmt: skip
    assert "Rows: true class · Columns: predicted class" in confusion
    assert "True ↓ / Predicted →" in confusion


def test_a_multiclass_version_has_a_line_per_class_with_its_area(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    body = version(3, evaluation=MULTICLASS_EVALUATION)
    body["signature"]["classes"] = PENGUINS
    gateway.routes[("GET", "/v1/models/m-1/versions/3")] = body
    *_, roc, pr, confusion, _ = handlers.show_version("m-1:3")
    assert chart(roc).legend == [
        "Adelie (AUC 0.990)",
        "Chinstrap (AUC 0.970)",
        "Gentoo (AUC 1.000)",
    ]
    assert chart(pr).legend == ["Adelie (AP 0.990)", "Chinstrap (AP 0.970)", "Gentoo (AP 1.000)"]
    shown = cells(confusion)
    assert len(shown) == 9 and shown[("Adelie", "Chinstrap")] == 2
    assert shown[("Chinstrap", "Adelie")] == 1


def test_a_version_without_holdout_or_from_an_older_gateway_says_what_is_missing(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.routes[("GET", "/v1/models/m-1/versions/3")] = version(
        3, evaluation=None, learning_curve=LEARNING_OK, holdout_rows=0, metrics=None
    )
    *_, learning, roc, pr, confusion, _ = handlers.show_version("m-1:3")
    assert len(chart(learning).lines) == 2
    for shown in (roc, pr, confusion):
        assert chart(shown).note.startswith("No holdout: no evaluation.")
    # Version 1 comes from a gateway without the new members: nothing was recorded.
    *_, learning, roc, _, _, _ = handlers.show_version("m-1:1")
    assert chart(learning).note.startswith("Not recorded")
    assert chart(roc).note.startswith("Not recorded")
    assert ModelVersion.model_validate(version(1)).evaluation is None


def test_the_train_tab_draws_the_losses_live_and_then_the_stored_curve(
    gateway: FakeGateway, training: Training, penguins: Path
) -> None:
    done = job("succeeded", fraction=1.0, result=evaluated(1))
    gateway.routes[("POST", "/v1/jobs")] = lambda _: httpx.Response(202, json=job("queued"))
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse(
        [fitting(5, 20, LOSSES), fitting(10, 20, {"learn_MultiClass": 0.7,
         "holdout_MultiClass": 0.8}), done]
    )  # fmt: skip
    updates = list(start_training(training, penguins, 20, 0.1, "none", False))
    curves = [chart(update[5]) for update in updates[:-1]]
    assert curves[0].note == "The losses appear here as the model trains."
    live = curves[-1]
    assert live.kind == "live" and live.axes == ["Iteration", "Loss"]
    assert {label: len(points) for label, points in live.lines.items()} == {
        "training MultiClass": 2,
        "holdout MultiClass": 2,
    }
    stored = chart(updates[-1][5])
    assert stored.title == "Learning curve (stored with the version)"
    assert len(stored.lines["holdout Logloss"]) == 3


def test_the_retrain_tab_draws_the_losses_live_too(
    gateway: FakeGateway, training: Training
) -> None:
    parent = ModelVersion.model_validate(version(1))
    gateway.routes[("POST", "/v1/models/m-1/retrain")] = lambda _: httpx.Response(
        202, json=job("queued", parent_version=1)
    )
    done = job("succeeded", fraction=1.0, result=version(2))  # an older service: no stored curve
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse(
        [fitting(3, 20, LOSSES), fitting(6, 20, LOSSES), fitting(9, 20, LOSSES), done]
    )
    updates = list(training.retrain(parent, KIND_LIST, None, 20, 0.1, "none", False))
    last_live = [u[5] for u in updates if isinstance(u[5], str)][-1]
    assert len(chart(last_live).lines["training MultiClass"]) == 3
    assert updates[-1][5] == gr.skip()  # the live chart stays as it was


def test_two_versions_side_by_side_show_metrics_hyperparameters_and_curves(
    gateway: FakeGateway,
) -> None:
    gateway.routes[("GET", "/v1/models/m-1/versions/1")] = evaluated(1)
    newer = evaluated(2, accuracy=0.99)
    newer["hyperparameters"]["iterations"] = 40
    gateway.routes[("GET", "/v1/models/m-1/versions/2")] = newer
    compare = Compare(gateway.client())
    first, second, _ = compare.versions("m-1")
    assert (first["value"], second["value"]) == (1, 2)
    summary, metrics, hyperparameters, left, right, error = compare.show("m-1", 2, 1)
    assert error == "" and "Version **1** (left) beside version **2** (right)" in summary
    accuracy = metrics.set_index("Metric").loc["Accuracy"]
    assert (accuracy["Version v1"], accuracy["Version v2"], accuracy["Change"]) == (
        "0.9700",
        "0.9900",
        "+0.0200",
    )
    settings = hyperparameters.set_index("Hyperparameter")
    assert settings.loc["iterations"].tolist() == ["20", "40", "yes"]
    assert settings.loc["learning_rate", "Differs?"] == ""
    for side, number in ((left, 1), (right, 2)):
        assert f"Version {number} · catboost" in side
        kinds = re.findall(r'data-chart="(\w+)"', side)
        assert kinds == ["learning", "roc", "pr", "confusion"]
    assert "Same version twice" in alert(compare.show("m-1", 2, 2)[-1])


def styles(shown: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Each line's (colour, dash) as drawn, and each legend key's markup."""
    drawn = re.findall(
        r'<polyline class="line"[^>]* stroke="([^"]*)"(?: stroke-dasharray="([^"]*)")?', shown
    )
    keys = re.findall(r"<li>(.*?)</span>[^<]*</li>", shown)
    return drawn, keys


def test_thirty_classes_each_get_a_line_and_legend_key_of_their_own(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    # Ten colours came round again: classes 1, 11 and 21 were drawn and keyed alike.
    names = [f"c{i:02d}" for i in range(30)]
    curves = [
        {"kind": kind, "class_name": name, "x": [0.0, 1.0], "y": [0.0, 1.0], "area": 0.5}
        for name in names
        for kind in ("roc", "pr")
    ]
    body = version(3, evaluation={"confusion_matrix": [], "curves": curves})
    body["signature"]["classes"] = names
    gateway.routes[("GET", "/v1/models/m-1/versions/3")] = body
    *_, roc, pr, _, _ = handlers.show_version("m-1:3")
    for shown in (roc, pr):
        drawn, keys = styles(shown)
        assert len(drawn) == 30 and len(set(drawn)) == 30
        assert len(keys) == 30 and len(set(keys)) == 30
    # Up to ten classes look as before: solid lines, keyed by a square of their colour.
    body = version(3, evaluation=MULTICLASS_EVALUATION)
    body["signature"]["classes"] = PENGUINS
    gateway.routes[("GET", "/v1/models/m-1/versions/3")] = body
    *_, roc, _, _, _ = handlers.show_version("m-1:3")
    drawn, keys = styles(roc)
    assert drawn == [("#4e79a7", ""), ("#f28e2b", ""), ("#e15759", "")]
    assert all(key.startswith('<span class="swatch" style="background: #') for key in keys)
