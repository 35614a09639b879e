"""Take the README's screenshots: each tab at 1400x1000 against a running gateway and UI.

`bin/screenshots` starts the three processes on free ports with a throwaway store and runs
this; it needs Debian's chromium and the dev dependencies (Playwright).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1000}
TABS = ("Train", "Models", "Compare", "Predict", "Retrain", "Jobs", "Delete")


def train(gateway: str, csv: Path) -> str:
    """Train a small model and a second version of it through the gateway; return its id."""
    spec = {"kind": "catboost", "target_column": "species", "name": "penguins"}
    spec["hyperparameters"] = json.dumps({"iterations": 50})
    with csv.open("rb") as file:
        answer = httpx.post(
            f"{gateway}/v1/jobs?wait=true",
            data=spec,
            files={"file": (csv.name, file, "text/csv")},
            timeout=300,
        )
    answer.raise_for_status()
    model_id: str = answer.json()["model_id"]
    again = httpx.post(
        f"{gateway}/v1/models/{model_id}/retrain?wait=true",
        json={"hyperparameters": {"iterations": 120, "depth": 4}},
        timeout=300,
    )
    again.raise_for_status()
    return model_id


def shoot(page: Page, ui: str, csv: Path, out: Path) -> None:
    """Show each tab with something in it and save it as docs/images/<tab>.png; the Models
    tab's curves and confusion matrix, below its tables, also as models-evaluation.png."""
    page.goto(ui)
    page.locator("#gateway-status").get_by_text("Connected").wait_for()
    page.locator("#train-file input[type=file]").set_input_files(csv)
    page.locator("#train-columns").get_by_text("bill_length_mm").first.wait_for()
    # Train one in the page, so the Train tab shows its learning curve and metrics.
    page.locator("#train-target input").click()
    page.get_by_role("option", name="species").first.click()
    page.locator("#train-hp-iterations input").fill("300")
    page.locator("#train-button").click()
    page.locator('#train-progress [data-state="succeeded"]').wait_for(timeout=300_000)
    page.locator("#train-curve [data-chart=learning]").wait_for()
    for tab in TABS:
        page.get_by_role("tab", name=tab, exact=True).click()
        if tab == "Models":
            page.locator("#models-version input").click()
            page.get_by_role("option").last.click()  # the first model, with two versions
            page.locator("#models-importance .importance-row").first.wait_for()
            page.locator("#models-roc polyline").first.wait_for()
        if tab == "Compare":
            page.locator("#compare-model input").click()
            page.get_by_role("option").last.click()
            page.locator("#compare-right [data-chart=roc] polyline").first.wait_for()
        time.sleep(1.5)  # the tab's own refresh fills its tables
        page.screenshot(path=out / f"{tab.lower()}.png")
        if tab == "Models":
            page.locator("#models-learning-curve").scroll_into_view_if_needed()
            page.mouse.wheel(0, 250)
            time.sleep(0.5)
            page.screenshot(path=out / "models-evaluation.png")
            page.mouse.wheel(0, -5000)


def main() -> None:
    """Parse the addresses, train a model, and take one screenshot per tab."""
    parser = argparse.ArgumentParser(prog="python -m ui.screenshots", description=__doc__)
    parser.add_argument("--ui-url", required=True)
    parser.add_argument("--gateway-url", required=True)
    parser.add_argument("--csv", type=Path, default=Path("../shared/data/penguins.csv"))
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train(args.gateway_url, args.csv)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport=VIEWPORT).new_page()  # type: ignore[arg-type]
        shoot(page, args.ui_url, args.csv.resolve(), args.out)
        browser.close()


if __name__ == "__main__":
    main()
