"""`python -m ml_service`: run the gRPC model service until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from ml_service import logs, telemetry
from ml_service.config import Settings
from ml_service.core import ModelServiceCore
from ml_service.grpc.server import Server


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Merge command-line flags over MLOPS_* environment variables."""
    parser = argparse.ArgumentParser(prog="python -m ml_service", description=__doc__)
    parser.add_argument("--host", help="bind address (MLOPS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gRPC port (MLOPS_PORT, default 50051)")
    parser.add_argument("--data-dir", type=Path, help="store directory (MLOPS_DATA_DIR)")
    parser.add_argument("--max-concurrent-trainings", type=int, help="worker processes")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING... (MLOPS_LOG_LEVEL)")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    return Settings(**given)


async def run(settings: Settings) -> None:
    """Serve until a stop signal, then stop gracefully."""
    server = Server(settings, ModelServiceCore(settings, telemetry.from_env()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"ml_service listening on {settings.host}:{server.port}", file=sys.stderr, flush=True)
    if server.metrics is not None:
        print(f"metrics on http://{settings.host}:{server.metrics.port}/metrics", file=sys.stderr)
    await stop.wait()
    await server.stop()
    provider = server.core.telemetry.tracer_provider
    if provider is not None:
        provider.shutdown()


def settings_problems(error: ValidationError) -> str:
    """Say what is wrong with the settings in one line, without pydantic's links."""
    return "; ".join(
        (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
        + e["msg"].removeprefix("Value error, ")
        for e in error.errors()
    )


def main(argv: list[str] | None = None) -> None:
    """Parse settings, configure logging and serve."""
    try:
        settings = parse_settings(argv)
    except ValidationError as exc:
        sys.exit(f"ml_service: {settings_problems(exc)}")
    logs.configure(settings.log_level, settings.log_json)
    try:
        asyncio.run(run(settings))
    except OSError as exc:
        sys.exit(f"ml_service: {exc}")


if __name__ == "__main__":
    main()
