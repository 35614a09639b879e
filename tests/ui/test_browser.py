"""End to end in a real browser: the three real processes, driven from the UI like a person.

Chromium is Debian's (/usr/bin/chromium); a missing browser fails the test, it never skips.
On failure a screenshot and the processes' logs land in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_SECONDS = 120.0
TRAIN_SECONDS = 120.0
# Generous waits: a loaded CI machine can take seconds per step; a passing run does not wait.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)
FINAL_STATES = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    """Ask the OS for a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Stack:
    """The three processes, each startable and stoppable by name, and where to reach them."""

    def __init__(self, tmp: Path) -> None:
        grpc_port, gateway_port, ui_port = free_port(), free_port(), free_port()
        self.gateway_url = f"http://127.0.0.1:{gateway_port}"
        self.ui_url = f"http://127.0.0.1:{ui_port}/"
        grpc_target = f"127.0.0.1:{grpc_port}"
        self.commands = {
            "ml_service": ["--port", str(grpc_port), "--data-dir", str(tmp / "data")],
            "rest_gateway": ["--port", str(gateway_port), "--grpc-target", grpc_target],
            "ui": ["--port", str(ui_port), "--gateway-url", self.gateway_url],
        }
        self.logs = {name: tmp / f"{name}.log" for name in self.commands}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        """Start one process; its output is appended to its log."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        with self.logs[name].open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", name, *self.commands[name]],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self, name: str) -> None:
        """Stop one process gracefully (SIGTERM), or kill it after 15 s."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_ready(self) -> None:
        """Wait until the gateway sees a ready service and the UI serves its page."""
        deadline = time.monotonic() + START_SECONDS
        for url in (f"{self.gateway_url}/readyz", self.ui_url):
            while not self._answers(url):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} was not ready within {START_SECONDS:g} s")
                time.sleep(0.3)

    def _answers(self, url: str) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see its log")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start ml_service, rest_gateway and ui as subprocesses on free loopback ports."""
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        for name in stack.commands:
            stack.start(name)
        stack.wait_ready()
        yield stack
    finally:
        for name in list(stack.processes):
            stack.stop(name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"No browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page on the UI; on failure, a screenshot and the logs go to test-artifacts/."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
        for log in stack.logs.values():
            if log.exists():
                shutil.copy(log, ARTIFACTS / log.name)
    context.close()


def choose(page: Page, elem_id: str, option: str) -> None:
    """Pick the dropdown option whose label contains `option`."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).first.click()


def upload(page: Page, elem_id: str, path: Path) -> None:
    """Put a file into a file component."""
    page.locator(f"#{elem_id} input[type=file]").set_input_files(path)


def read_table(page: Page, elem_id: str) -> list[dict[str, str]]:
    """Read a Dataframe component as the person sees it: one dict per row."""
    rows: list[dict[str, str]] = page.locator(f"#{elem_id}").evaluate(
        """root => {
            const heads = [...root.querySelectorAll('[role=columnheader]')].map(h => h.title);
            return [...root.querySelectorAll('[role=row][data-index]')].map(row =>
                Object.fromEntries([...row.querySelectorAll('[role=gridcell]')]
                    .map((cell, i) => [heads[i], cell.innerText.trim()])));
        }"""
    )
    return rows


def shown_id(page: Page, elem_id: str, prefix: str) -> str:
    """The model or job id (`m-…`, `j-…`) a result shows, once it shows one.

    Gradio redraws a Markdown after the HTML beside it that came in the same update, so the
    progress bar can read "succeeded" a moment before the result names the model."""
    pattern = re.compile(rf"{prefix}-[0-9a-f]+")
    expect(page.locator(f"#{elem_id}")).to_contain_text(pattern)
    found = pattern.search(page.locator(f"#{elem_id}").inner_text())
    assert found, page.locator(f"#{elem_id}").inner_text()
    return found[0]


def follow_progress(page: Page, elem_id: str) -> list[tuple[str, int]]:
    """Watch a progress bar until its job ends; return each (state, percent) it showed."""
    bar = page.locator(f"#{elem_id} .job-progress")
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + TRAIN_SECONDS
    while time.monotonic() < deadline:
        shown = bar.evaluate("e => [e.dataset.state, Number(e.dataset.percent)]")
        state, percent = str(shown[0]), int(shown[1])
        if not seen or seen[-1] != (state, percent):
            seen.append((state, percent))
        if state in FINAL_STATES:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"training did not end within {TRAIN_SECONDS:g} s; saw {seen}")


def test_train_inspect_predict_retrain_delete(
    page: Page, stack: Stack, data_dir_path: Path, tmp_path: Path
) -> None:
    penguins = data_dir_path / "penguins.csv"
    page.goto(stack.ui_url)
    expect(page.locator("#gateway-status")).to_contain_text("Connected")

    # Train: upload, read the preview, pick the target, few iterations, watch it finish.
    upload(page, "train-file", penguins)
    expect(page.locator("#train-columns")).to_contain_text("bill_length_mm")
    types = {row["Column"]: row["Detected type"] for row in read_table(page, "train-columns")}
    assert types["species"] == "categorical" and types["body_mass_g"] == "numeric"
    choose(page, "train-target", "species")
    page.locator("#train-name").get_by_role("textbox").fill("penguins-e2e")
    page.locator("#train-hp-iterations input").fill("30")
    page.locator("#train-button").click()
    seen = follow_progress(page, "train-progress")
    assert seen[-1] == ("succeeded", 100), seen
    percents = [percent for _, percent in seen]
    assert percents == sorted(percents), seen
    expect(page.locator("#train-progress")).to_contain_text("Done · 100%")
    expect(page.locator("#train-metrics")).to_contain_text("Accuracy")
    metrics = {row["Metric"]: row["Holdout value"] for row in read_table(page, "train-metrics")}
    assert float(metrics["Accuracy"]) > 0.8, metrics
    model_id = shown_id(page, "train-result", "m")

    # Models: the new model is in the table; its details and importance plot show.
    page.get_by_role("tab", name="Models").click()
    expect(page.locator("#models-table")).to_contain_text(model_id)
    choose(page, "models-version", f"{model_id} · v1")
    expect(page.locator("#models-summary")).to_contain_text("penguins-e2e")
    expect(page.locator("#models-signature")).to_contain_text("flipper_length_mm")
    expect(page.locator("#models-hyperparameters")).to_contain_text("iterations")
    # Horizontal bars with every feature named in full, and the axis titled.
    expect(page.locator("#models-importance")).to_contain_text("flipper_length_mm")
    expect(page.locator("#models-importance")).to_contain_text("Importance (% of the total)")

    # Predict: upload rows, read the results, download them.
    rows = tmp_path / "new-penguins.csv"
    lines = penguins.read_text().splitlines()
    rows.write_text("\n".join([lines[0], lines[1], lines[160], lines[300]]) + "\n")
    page.get_by_role("tab", name="Predict").click()
    choose(page, "predict-model", model_id)
    expect(page.locator("#predict-version input")).to_have_value("latest")
    upload(page, "predict-file", rows)
    expect(page.locator("#predict-rows")).to_contain_text("Torgersen")
    page.locator("#predict-button").click()
    expect(page.locator("#predict-results")).to_contain_text("P(Gentoo)")
    results = read_table(page, "predict-results")
    assert len(results) == 3
    right = [row["species"] == row["Predicted species"] for row in results]
    assert sum(right) >= 2, results
    assert all(0 <= float(row["P(Adelie)"]) <= 1 for row in results)
    with page.expect_download() as download:
        page.locator("#predict-download").click()
    header = Path(download.value.path()).read_text().splitlines()[0]
    assert header.endswith("Predicted species,P(Adelie),P(Chinstrap),P(Gentoo)")

    # Retrain: the parent's settings are filled in; change one; new beside old.
    page.get_by_role("tab", name="Retrain").click()
    choose(page, "retrain-model", model_id)
    expect(page.locator("#retrain-hp-iterations input")).to_have_value("30")
    page.locator("#retrain-hp-iterations input").fill("40")
    page.locator("#retrain-button").click()
    assert follow_progress(page, "retrain-progress")[-1] == ("succeeded", 100)
    expect(page.locator("#retrain-compare")).to_contain_text("New v2")
    compare = {row["Metric"]: row for row in read_table(page, "retrain-compare")}
    assert compare["Accuracy"]["Parent v1"] == metrics["Accuracy"]
    expect(page.locator("#retrain-result")).to_contain_text("iterations = 40")

    # Delete: the whole model, after confirming; it is gone from the Models table.
    page.get_by_role("tab", name="Delete").click()
    choose(page, "delete-model", model_id)
    expect(page.locator("#delete-version input")).to_have_value("Version 2 only")
    choose(page, "delete-version", "All versions: the whole model")
    page.locator("#delete-button").click()
    expect(page.locator("#delete-question")).to_contain_text("with all its 2 version(s)")
    page.locator("#delete-confirm").click()
    expect(page.locator("#delete-result")).to_contain_text(f"Deleted model {model_id}")
    page.get_by_role("tab", name="Models").click()
    page.locator("#models-refresh").click()
    expect(page.locator("#models-table")).not_to_contain_text(model_id)
    assert httpx.get(f"{stack.gateway_url}/v1/models/{model_id}").status_code == 404


def test_the_ui_says_when_the_gateway_is_gone_and_works_again_when_it_is_back(
    page: Page, stack: Stack
) -> None:
    page.goto(stack.ui_url)
    expect(page.locator("#gateway-status")).to_contain_text("Connected")
    stack.stop("rest_gateway")
    page.locator("#gateway-check").click()
    expect(page.locator("#gateway-status")).to_contain_text(
        f"The gateway at {stack.gateway_url} is not reachable"
    )
    page.get_by_role("tab", name="Models").click()
    expect(page.get_by_text("is not reachable (could not connect)").first).to_be_visible()
    stack.start("rest_gateway")
    stack.wait_ready()
    page.locator("#gateway-check").click()
    expect(page.locator("#gateway-status")).to_contain_text("Connected")
    page.locator("#models-refresh").click()
    expect(page.locator("#models-table")).to_contain_text("Model")
    expect(page.locator("#train-kind input")).to_have_value("CatBoost classifier")
