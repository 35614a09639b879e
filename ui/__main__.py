"""`python -m ui --host H --port P --gateway-url URL`; MLOPS_UI_* environment variables too."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from mlops.setting_rules import settings_problems
from pydantic import ValidationError

from ui.app import serve
from ui.config import UISettings


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line over the environment's settings and serve."""
    parser = argparse.ArgumentParser(prog="python -m ui", description=__doc__)
    parser.add_argument("--host", help="address to bind (MLOPS_UI_HOST)")
    parser.add_argument("--port", type=int, help="HTTP port (MLOPS_UI_PORT)")
    parser.add_argument("--gateway-url", help="REST gateway base URL (MLOPS_UI_GATEWAY_URL)")
    parser.add_argument("--log-level", help="logging level (MLOPS_UI_LOG_LEVEL)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = UISettings(**overrides)
    except ValidationError as exc:
        sys.exit(f"ui: {settings_problems(exc, 'MLOPS_UI_', overrides)}")
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every request at INFO; the client logs the failed ones itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Gradio phones home (version check, telemetry) unless told not to; a UI inside a
    # model service has no reason to, and offline deployments would wait on it.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio closes its server cleanly on Ctrl-C only; make SIGTERM (compose, Kubernetes,
    # bin/start) take the same path instead of killing the process mid-request.
    signal.signal(signal.SIGTERM, _interrupt)
    serve(settings)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
