"""In a real browser on the three real processes: jobs that survive a refresh, cancel from the
Jobs tab, errors that stay, a failed prediction that leaves nothing stale, columns left out,
and API docs that render with no internet."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
from playwright.sync_api import Browser, Page, Route, expect

from tests.ui.test_browser import Stack, browser, choose, page, shown_id, stack, upload

__all__ = ["browser", "page", "stack"]  # fixtures shared with the first browser module

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def train_by_rest(stack: Stack, penguins: Path, iterations: int, name: str) -> httpx.Response:
    """Start a CatBoost training through the gateway; return its 202 answer."""
    spec = {
        "kind": "catboost",
        "target_column": "species",
        "name": name,
        "hyperparameters": json.dumps({"iterations": iterations}),
    }
    with penguins.open("rb") as file:
        answer = httpx.post(
            f"{stack.gateway_url}/v1/jobs",
            data=spec,
            files={"file": ("penguins.csv", file, "text/csv")},
            timeout=60,
        )
    assert answer.status_code == 202, answer.text
    return answer


def test_a_refresh_or_a_second_browser_shows_the_running_job_and_the_jobs_tab_cancels_it(
    page: Page, browser: Browser, stack: Stack, data_dir_path: Path
) -> None:
    page.goto(stack.ui_url)
    expect(page.locator("#gateway-status")).to_contain_text("Connected")
    upload(page, "train-file", data_dir_path / "penguins.csv")
    choose(page, "train-target", "species")
    # Long on purpose: the job must still run after a reload and a second browser's load.
    page.locator("#train-hp-iterations input").fill("10000")
    page.locator("#train-button").click()
    bar = page.locator("#train-progress .job-progress")
    expect(bar).to_have_attribute("data-state", "running")
    expect(page.locator("#train-button")).to_be_disabled()
    expect(page.locator("#train-progress")).to_be_in_viewport()

    page.reload()
    expect(bar).to_have_attribute("data-state", "running")
    expect(page.locator("#train-progress")).to_contain_text(re.compile(r"iteration \d+ of 10000"))
    expect(page.locator("#train-button")).to_be_disabled()
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.goto(stack.ui_url)
    expect(other.locator("#train-progress .job-progress")).to_have_attribute(
        "data-state", "running"
    )
    job_id = shown_id(page, "train-result", "j")

    other.get_by_role("tab", name="Jobs").click()
    expect(other.locator("#jobs-table")).to_contain_text(job_id)
    expect(other.locator("#jobs-table")).to_contain_text("running")
    expect(other.locator("#jobs-pick input")).to_have_value(job_id)
    other.locator("#jobs-cancel").click()
    expect(other.locator("#jobs-result")).to_contain_text(f"Asked job {job_id} to stop")
    expect(other.locator("#jobs-table")).to_contain_text("cancelled")
    # The first page, still attached, sees the end and gets its button back.
    expect(bar).to_have_attribute("data-state", "cancelled")
    expect(page.locator("#train-button")).to_be_enabled()
    other.context.close()


def test_an_error_stays_in_place_and_leaves_the_inputs_alone(
    page: Page, stack: Stack, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    page.goto(stack.ui_url)
    expect(page.locator("#gateway-status")).to_contain_text("Connected")
    upload(page, "train-file", empty)
    error = page.locator("#train-error [role=alert]")
    expect(error).to_contain_text("empty.csv is empty; a CSV file begins with a line naming")
    time.sleep(15)  # toasts went after about 10 s; this stays until the next action
    expect(error).to_be_visible()
    expect(error).to_contain_text("empty.csv is empty; a CSV file begins with a line naming")
    expect(page.locator("#train-target input")).to_be_visible()
    expect(page.locator("#train-columns")).to_contain_text("Detected type")


def test_a_failed_prediction_names_the_row_and_clears_the_results_and_download(
    page: Page, stack: Stack, data_dir_path: Path, tmp_path: Path
) -> None:
    penguins = data_dir_path / "penguins.csv"
    job = train_by_rest(stack, penguins, 20, "predict-e2e").json()
    for _ in range(600):
        job = httpx.get(f"{stack.gateway_url}/v1/jobs/{job['job_id']}").json()
        if job["state"] == "succeeded":
            break
        time.sleep(0.2)
    model_id = job["result"]["model_id"]
    lines = penguins.read_text().splitlines()
    good = tmp_path / "good.csv"
    good.write_text("\n".join([lines[0], lines[1], lines[2]]) + "\n")
    header = lines[0].split(",")
    bad_row = lines[2].split(",")
    bad_row[header.index("body_mass_g")] = "heavy"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1], ",".join(bad_row)]) + "\n")

    page.goto(stack.ui_url)
    page.get_by_role("tab", name="Predict").click()
    expect(page.locator("#predict-rows")).not_to_contain_text("1")  # no "1 2 3" headers
    choose(page, "predict-model", model_id)
    upload(page, "predict-file", good)
    expect(page.locator("#predict-rows")).to_contain_text("Torgersen")
    page.locator("#predict-button").click()
    expect(page.locator("#predict-download")).to_be_visible()
    expect(page.locator("#predict-results")).to_contain_text("Predicted species")

    page.locator("#predict-file button[aria-label='Clear']").click()
    upload(page, "predict-file", bad)
    expect(page.locator("#predict-rows")).to_contain_text("heavy")
    page.locator("#predict-button").click()
    error = page.locator("#predict-error [role=alert]")
    expect(error).to_contain_text("column 'body_mass_g'")
    expect(error).to_contain_text("row 2: 'heavy'")
    expect(error).not_to_contain_text("columns.")
    expect(page.locator("#predict-download")).to_be_hidden()
    expect(page.locator("#predict-results")).not_to_contain_text("Predicted species")


def test_a_column_left_out_is_not_in_the_signature_and_a_retyped_one_is_categorical(
    page: Page, stack: Stack, data_dir_path: Path
) -> None:
    page.goto(stack.ui_url)
    expect(page.locator("#gateway-status")).to_contain_text("Connected")
    upload(page, "train-file", data_dir_path / "penguins.csv")
    choose(page, "train-target", "species")
    features = page.locator("#train-features")
    expect(features.get_by_label("species", exact=True)).to_have_count(0)  # the target is not one
    features.get_by_label("island", exact=True).uncheck()
    expect(features.get_by_label("island", exact=True)).not_to_be_checked()
    choose(page, "train-as-categorical", "year")
    features = trained_feature_types(page, stack, "columns-e2e")
    assert "island" not in features and "species" not in features
    assert features["year"] == "categorical" and features["body_mass_g"] == "numeric"


def test_a_column_of_prices_is_named_offered_as_categorical_and_trains_ticked(
    page: Page, stack: Stack, data_dir_path: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(data_dir_path / "penguins.csv")
    frame.insert(2, "price", frame["body_mass_g"].map(lambda g: f"${g / 1000:.2f}", "ignore"))
    priced = tmp_path / "priced.csv"
    frame.to_csv(priced, index=False)
    page.goto(stack.ui_url)
    expect(page.locator("#gateway-status")).to_contain_text("Connected")
    upload(page, "train-file", priced)
    expect(page.locator("#train-id-hint")).to_contain_text(
        "Column 'price' holds numbers written with a currency sign ('$3.75'): training refuses "
        "it unless you tick it as categorical, or remove the signs in the file to have it read "
        "as numbers."
    )
    # Not offered as numeric, which the service refuses; other text columns are.
    page.locator("#train-as-numeric input").click()
    expect(page.get_by_role("option", name="island", exact=True)).to_be_visible()
    expect(page.get_by_role("option", name="price", exact=True)).to_have_count(0)
    page.keyboard.press("Escape")
    choose(page, "train-target", "species")
    choose(page, "train-as-categorical", "price")
    features = trained_feature_types(page, stack, "prices-e2e")
    assert features["price"] == "categorical" and features["body_mass_g"] == "numeric"


def test_the_api_docs_render_their_operations_with_no_internet(page: Page, stack: Stack) -> None:
    refused: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", loopback_only)
    page.goto(f"{stack.gateway_url}/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/v1/jobs").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    assert refused == [], refused
    page.goto(f"{stack.gateway_url}/redoc")
    expect(page.get_by_text("Train a new model from JSON rows").first).to_be_visible()
    # ReDoc's bundle links its "powered by" logo from its CDN; the page renders without it.
    assert [url for url in refused if not url.endswith("/logo-mini.svg")] == [], refused


def trained_feature_types(page: Page, stack: Stack, name: str) -> dict[str, str]:
    """Train the Train tab's choices as `name` (10 iterations); the saved version's types."""
    page.locator("#train-name").get_by_role("textbox").fill(name)
    page.locator("#train-hp-iterations input").fill("10")
    page.locator("#train-button").click()
    bar = page.locator("#train-progress .job-progress")
    expect(bar).to_have_attribute("data-state", "succeeded", timeout=120_000)
    model_id = shown_id(page, "train-result", "m")
    version = httpx.get(f"{stack.gateway_url}/v1/models/{model_id}/versions/1").json()
    return {f["name"]: f["feature_type"] for f in version["signature"]["features"]}
