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
TABS = ("Train", "Models", "Predict", "Retrain", "Jobs", "Delete")


def train(gateway: str, csv: Path) -> str:
    """Train a small model through the gateway and return its id."""
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
    return model_id


def shoot(page: Page, ui: str, csv: Path, out: Path) -> None:
    """Show each tab with something in it and save it as docs/images/<tab>.png."""
    page.goto(ui)
    page.locator("#gateway-status").get_by_text("Connected").wait_for()
    page.locator("#train-file input[type=file]").set_input_files(csv)
    page.locator("#train-columns").get_by_text("bill_length_mm").first.wait_for()
    for tab in TABS:
        page.get_by_role("tab", name=tab, exact=True).click()
        if tab == "Models":
            page.locator("#models-version input").click()
            page.get_by_role("option").first.click()
            page.locator("#models-importance .importance-row").first.wait_for()
        time.sleep(1.5)  # the tab's own refresh fills its tables
        page.screenshot(path=out / f"{tab.lower()}.png")


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
