"""In a real browser on the three real processes: the learning curve drawn while a model
trains and kept after, the ROC, precision-recall and confusion-matrix charts of a version,
and two versions side by side."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.ui.test_browser import (
    FINAL_STATES,
    TRAIN_SECONDS,
    Stack,
    browser,
    choose,
    page,
    read_table,
    shown_id,
    stack,
    upload,
)
from tests.ui.test_browser_issue15 import train_by_rest

__all__ = ["browser", "page", "stack"]  # fixtures shared with the first browser module


def drawn(line: Locator) -> tuple[float, float]:
    """The width and height a line takes on the screen: a drawn curve is not a dot."""
    box = line.bounding_box()
    assert box is not None
    return box["width"], box["height"]


def wait_for_version(stack: Stack, answer: httpx.Response) -> dict[str, object]:
    """Wait for a job started through the gateway to succeed; return its version."""
    job = answer.json()
    deadline = time.monotonic() + TRAIN_SECONDS
    while job["state"] not in FINAL_STATES and time.monotonic() < deadline:
        time.sleep(0.2)
        job = httpx.get(f"{stack.gateway_url}/v1/jobs/{job['job_id']}").json()
    assert job["state"] == "succeeded", job
    result: dict[str, object] = job["result"]
    return result


def test_the_learning_curve_is_drawn_while_training_and_the_evaluation_on_models(
    page: Page, stack: Stack, data_dir_path: Path
) -> None:
    page.goto(stack.ui_url)
    expect(page.locator("#gateway-status")).to_contain_text("Connected")
    upload(page, "train-file", data_dir_path / "penguins.csv")
    choose(page, "train-target", "species")
    page.locator("#train-name").get_by_role("textbox").fill("curves-e2e")
    page.locator("#train-hp-iterations input").fill("1000")
    page.locator("#train-button").click()

    # While it runs: the live chart gains points, both losses, with its axes titled.
    bar = page.locator("#train-progress .job-progress")
    live = page.locator("#train-curve [data-chart=live]")
    expect(bar).to_have_attribute("data-state", "running")
    expect(live.locator("polyline.line")).to_have_count(2)
    expect(live.locator(".chart-legend")).to_contain_text("training MultiClass")
    expect(live.locator(".chart-legend")).to_contain_text("holdout MultiClass")
    expect(live.get_by_text("Iteration", exact=True)).to_be_visible()
    expect(live.get_by_text("Loss", exact=True)).to_be_visible()
    first = int(live.get_attribute("data-points") or 0)
    expect(live).not_to_have_attribute("data-points", str(first))  # more come as it trains

    # After: the curve stored with the version, every sampled iteration of both losses.
    expect(bar).to_have_attribute("data-state", "succeeded", timeout=TRAIN_SECONDS * 1000)
    stored = page.locator("#train-curve [data-chart=learning]")
    expect(stored).to_contain_text("Learning curve (stored with the version)")
    for line in stored.locator("polyline.line").all():
        assert int(line.get_attribute("data-points") or 0) >= 50
        width, height = drawn(line)
        assert width > 200 and height > 20, (width, height)
    model_id = shown_id(page, "train-result", "m")

    # Models: ROC and PR per class with their areas, and the confusion matrix of the holdout.
    page.get_by_role("tab", name="Models").click()
    choose(page, "models-version", f"{model_id} · v1")
    roc = page.locator("#models-roc")
    expect(roc.locator("polyline.line")).to_have_count(3)
    for species in ("Adelie", "Chinstrap", "Gentoo"):
        expect(roc.locator(".chart-legend")).to_contain_text(
            re.compile(species + r" \(AUC (0\.9|1\.0)")
        )
        expect(page.locator("#models-pr .chart-legend")).to_contain_text(f"{species} (AP ")
    expect(roc.get_by_text("False-positive rate")).to_be_visible()
    expect(roc.get_by_text("True-positive rate")).to_be_visible()
    assert all(drawn(line)[0] > 100 for line in roc.locator("polyline.line").all())
    confusion = page.locator("#models-confusion")
    expect(confusion).to_contain_text("Rows: true class · Columns: predicted class")
    expect(confusion.locator("td")).to_have_count(9)
    counts = [int(text) for text in confusion.locator("td").all_inner_texts()]
    version = httpx.get(f"{stack.gateway_url}/v1/models/{model_id}/versions/1").json()
    assert sum(counts) == version["holdout_rows"]
    diagonal = confusion.locator("td.cm-hit").all_inner_texts()
    assert sum(int(count) for count in diagonal) >= 0.8 * sum(counts)
    expect(page.locator("#models-learning-curve polyline.line")).to_have_count(2)


def test_two_versions_are_compared_side_by_side(
    page: Page, stack: Stack, data_dir_path: Path
) -> None:
    penguins = data_dir_path / "penguins.csv"
    first = wait_for_version(stack, train_by_rest(stack, penguins, 20, "compare-e2e"))
    model_id = str(first["model_id"])
    retrain = httpx.post(
        f"{stack.gateway_url}/v1/models/{model_id}/retrain",
        content=json.dumps({"hyperparameters": {"iterations": 60}}),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert retrain.status_code == 202, retrain.text
    wait_for_version(stack, retrain)

    page.goto(stack.ui_url)
    page.get_by_role("tab", name="Compare").click()
    choose(page, "compare-model", model_id)
    expect(page.locator("#compare-first input")).to_have_value("v1")
    expect(page.locator("#compare-second input")).to_have_value("v2")
    expect(page.locator("#compare-summary")).to_contain_text("Version 1 (left) beside version 2")
    expect(page.locator("#compare-metrics")).to_contain_text("Version v2")
    metrics = {row["Metric"]: row for row in read_table(page, "compare-metrics")}
    assert float(metrics["Accuracy"]["Version v1"]) > 0.5
    assert float(metrics["Accuracy"]["Version v2"]) > 0.5
    expect(page.locator("#compare-hyperparameters")).to_contain_text("iterations")
    settings = {row["Hyperparameter"]: row for row in read_table(page, "compare-hyperparameters")}
    assert (settings["iterations"]["v1"], settings["iterations"]["v2"]) == ("20", "60")
    assert settings["iterations"]["Differs?"] == "yes"
    for side, number in (("left", 1), ("right", 2)):
        column = page.locator(f"#compare-{side}")
        expect(column).to_contain_text(f"Version {number} · catboost")
        expect(column.locator("[data-chart=roc] polyline.line")).to_have_count(3)
        expect(column.locator("[data-chart=confusion] td")).to_have_count(9)
        expect(column.locator("[data-chart=learning] polyline.line")).to_have_count(2)
    left = page.locator("#compare-left").bounding_box()
    right = page.locator("#compare-right").bounding_box()
    assert left and right and left["x"] + left["width"] <= right["x"]  # next to each other
