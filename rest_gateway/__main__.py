"""`python -m rest_gateway --host H --port P --grpc-target HOST:PORT`; MLOPS_GATEWAY_* too."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import uvicorn

from rest_gateway.app import create_app
from rest_gateway.config import GatewaySettings


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line over the environment's settings and serve."""
    parser = argparse.ArgumentParser(prog="python -m rest_gateway", description=__doc__)
    parser.add_argument("--host", help="address to bind (MLOPS_GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="HTTP port (MLOPS_GATEWAY_PORT)")
    parser.add_argument(
        "--grpc-target", help="host:port of the service (MLOPS_GATEWAY_GRPC_TARGET)"
    )
    parser.add_argument("--log-level", help="logging level (MLOPS_GATEWAY_LOG_LEVEL)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = GatewaySettings(**overrides)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
