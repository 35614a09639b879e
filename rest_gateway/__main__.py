"""`python -m rest_gateway --host H --port P --grpc-target HOST:PORT`; MLOPS_GATEWAY_* too."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import uvicorn
from mlops.setting_rules import settings_problems
from pydantic import ValidationError

from rest_gateway import request_ids, telemetry
from rest_gateway.app import create_app
from rest_gateway.config import GatewaySettings

log = logging.getLogger("rest_gateway")


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
    try:
        settings = GatewaySettings(**overrides)
    except ValidationError as exc:
        sys.exit(f"rest_gateway: {settings_problems(exc, 'MLOPS_GATEWAY_', overrides)}")
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s request_id=%(request_id)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(request_ids.RequestIdFilter())
    log.info(
        "serving on %s:%d for the service at %s (token to the service %s, TLS to the service %s)",
        settings.host,
        settings.port,
        settings.grpc_target,
        "on" if settings.grpc_token.get_secret_value() else "off",
        "on" if settings.tls else "off",
    )
    observability = telemetry.from_env()
    uvicorn.run(
        create_app(settings, observability=observability),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
