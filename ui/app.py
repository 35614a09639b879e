"""Build the Gradio app from a gateway client, and serve it."""

from __future__ import annotations

import gradio as gr
import httpx

from ui import tabs, version_tabs
from ui.client import GatewayClient
from ui.compare import Compare
from ui.config import UISettings
from ui.handlers import Handlers
from ui.jobs import Jobs, jobs_tab
from ui.training import Training

TITLE = "MLOps model service"
INTRO = (
    "# MLOps model service\n"
    "Train a classifier from a CSV, watch it learn, read its metrics and curves, compare "
    "versions, predict on new rows, retrain it and delete it. Everything goes through the "
    "REST gateway."
)
# System fonts: the default theme fetches Google Fonts, which offline deployments cannot reach.
THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=["ui-monospace", "monospace"],
)
CSS = """
.job-progress-track { height: 14px; border-radius: 7px; overflow: hidden;
  background: var(--neutral-200); }
.job-progress-fill { height: 100%; background: var(--color-accent);
  transition: width 0.3s ease; }
.job-progress-text { margin-top: 6px; font-size: var(--text-md); }
.inline-error { padding: 10px 14px; border-radius: 6px; border: 1px solid #dc2626;
  background: #fef2f2; color: #991b1b; }
.importance-title { font-weight: 600; margin: 0 0 6px; }
.importance-axis-y, .importance-axis-x { font-size: var(--text-sm);
  color: var(--body-text-color-subdued); }
.importance-axis-x { text-align: center; margin-top: 4px; }
.importance-row { display: grid; grid-template-columns: minmax(8em, max-content) 1fr 4em;
  gap: 8px; align-items: center; margin: 3px 0; }
.importance-name { white-space: nowrap; }
.importance-track { background: var(--neutral-100); height: 14px; border-radius: 3px; }
.importance-bar { display: block; height: 100%; background: var(--color-accent);
  border-radius: 3px; }
.importance-value { text-align: right; font-variant-numeric: tabular-nums; }
.chart { margin: 0; }
.chart-title { font-weight: 600; margin: 0 0 4px; }
.chart-plot { width: 100%; max-width: 560px; height: auto; display: block; }
.chart-plot .grid { stroke: var(--neutral-200); stroke-width: 1; }
.chart-plot .chance { stroke: var(--neutral-400); stroke-dasharray: 4 4; }
.chart-plot .line { fill: none; stroke-width: 2; }
.chart-plot .tick { font-size: 11px; fill: var(--body-text-color-subdued); }
.chart-plot .axis-title { font-size: 12px; fill: var(--body-text-color); }
.chart-legend { list-style: none; padding: 0; margin: 4px 0 0; display: flex;
  flex-wrap: wrap; gap: 4px 14px; font-size: var(--text-sm); }
.chart-legend .swatch { display: inline-block; width: 12px; height: 12px;
  border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.chart-legend .swatch-line { display: inline-block; margin-right: 5px; vertical-align: -1px; }
.chart-note, .chart-empty { color: var(--body-text-color-subdued); }
/* Many classes make the matrix wider than its half of the page, which cut it off. */
.cm-scroll { max-width: 100%; overflow: auto; max-height: 640px; }
.cm-scroll thead th { position: sticky; top: 0; background: var(--background-fill-primary); }
.cm-scroll th[scope=row] { position: sticky; left: 0; background: var(--background-fill-primary); }
.cm { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.cm th, .cm td { border: 1px solid var(--neutral-200); padding: 6px 10px; text-align: center; }
.cm th[scope=row] { text-align: right; }
.cm-axes { font-size: var(--text-sm); color: var(--body-text-color-subdued); margin: 0 0 4px; }
.compare-side .chart { margin-bottom: 14px; }
"""


def build_demo(
    client: GatewayClient, *, preview_rows: int = 10, max_table_rows: int = 10_000
) -> gr.Blocks:
    """Lay out the seven tabs and wire every event to a handler bound to `client`."""
    handlers = Handlers(client, max_table_rows=max_table_rows)
    training = Training(client, preview_rows=preview_rows)
    demo = gr.Blocks(title=TITLE, analytics_enabled=False)
    with demo:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            status = gr.Markdown("Checking the gateway…", elem_id="gateway-status")
            check = gr.Button("Check again", size="sm", scale=0, elem_id="gateway-check")
        kinds = gr.State([])
        with gr.Tabs():
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                kind = tabs.train_tab(training, kinds, demo.load)
            with gr.Tab("Models", id="models", elem_id="tab-models") as models:
                version_tabs.models_tab(handlers, models)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as compare:
                version_tabs.compare_tab(Compare(client), handlers, compare)
            with gr.Tab("Predict", id="predict", elem_id="tab-predict") as predict:
                tabs.predict_tab(handlers, predict)
            with gr.Tab("Retrain", id="retrain", elem_id="tab-retrain") as retrain:
                tabs.retrain_tab(training, handlers, kinds, retrain, demo.load)
            with gr.Tab("Jobs", id="jobs", elem_id="tab-jobs"):
                jobs_tab(Jobs(client), tabs.PRIVATE)
            with gr.Tab("Delete", id="delete", elem_id="tab-delete") as delete:
                tabs.delete_tab(handlers, delete)
        for trigger in (demo.load, check.click):
            trigger(handlers.status, kind, [status, kinds, kind], **tabs.PRIVATE)
    # Every handler waits on HTTP, not on the CPU: let sessions run side by side.
    demo.queue(default_concurrency_limit=None)
    return demo


def serve(settings: UISettings) -> None:
    """Serve the UI until interrupted, talking to the gateway at settings.gateway_url."""
    token = settings.gateway_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    with httpx.Client(
        base_url=settings.gateway_url, timeout=settings.timeout_seconds, headers=headers
    ) as http:
        demo = build_demo(
            GatewayClient(http),
            preview_rows=settings.preview_rows,
            max_table_rows=settings.max_table_rows,
        )
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            root_path=settings.root_path or None,
            theme=THEME,
            css=CSS,
            ssr_mode=False,
            footer_links=["gradio"],
            quiet=True,
        )
