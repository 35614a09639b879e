"""`python -m ml_service.healthcheck`: exit 0 only while a gRPC health status is SERVING.

For container healthchecks (compose, plain Docker), which have no gRPC probe built in;
Kubernetes asks the same health service natively with `grpc:` probes. Health needs no bearer
token; a service on TLS needs --tls-ca-file (and a client pair for mutual TLS).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops import names

READINESS = names.READINESS_SERVICE
SERVING = health_pb2.HealthCheckResponse.SERVING


def open_channel(target: str, args: argparse.Namespace) -> Any:
    """A plaintext channel, or a TLS one when a CA file is given."""
    # A proxy from the environment (http_proxy) would swallow a check meant for this host.
    options: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]
    if args.tls_ca_file is None:
        return grpc.insecure_channel(target, options=options)
    if args.tls_server_name:
        # The certificate names the service (e.g. ml-service), not 127.0.0.1.
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=args.tls_ca_file.read_bytes(),
        private_key=args.tls_key_file.read_bytes() if args.tls_key_file else None,
        certificate_chain=args.tls_cert_file.read_bytes() if args.tls_cert_file else None,
    )
    return grpc.secure_channel(target, credentials, options=options)


def check(args: argparse.Namespace) -> str | None:
    """Ask once; return None when SERVING, else why not, in words."""
    with open_channel(args.target, args) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=args.service)
        try:
            # No wait_for_ready: a refused connection fails at once with UNAVAILABLE, and the
            # caller (Docker's retries and start_period) decides how long to keep asking.
            response = stub.Check(request, timeout=args.timeout)
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
    if response.status != SERVING:
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    return None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read and check the command line."""
    parser = argparse.ArgumentParser(prog="python -m ml_service.healthcheck", description=__doc__)
    parser.add_argument(
        "--target", default="127.0.0.1:50051", help="host:port of the service (127.0.0.1:50051)"
    )
    parser.add_argument(
        "--service",
        default=READINESS,
        help=f'health service name: "{READINESS}" (default), "mlops.v1.liveness" or "" (overall)',
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait (3)")
    parser.add_argument("--tls-ca-file", type=Path, help="PEM CA bundle: connect over TLS")
    parser.add_argument("--tls-server-name", help="name to expect in the server's certificate")
    parser.add_argument("--tls-cert-file", type=Path, help="PEM client certificate (mutual TLS)")
    parser.add_argument("--tls-key-file", type=Path, help="PEM client key (mutual TLS)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if (args.tls_cert_file is None) != (args.tls_key_file is None):
        parser.error("give both --tls-cert-file and --tls-key-file, or neither")
    if args.tls_ca_file is None and (args.tls_cert_file or args.tls_server_name):
        parser.error("the other --tls-* options need --tls-ca-file")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Check once and return the exit code: 0 SERVING, 1 anything else."""
    args = parse_args(argv)
    try:
        problem = check(args)
    except OSError as error:  # an unreadable certificate file
        problem = str(error)
    if problem is not None:
        print(f"{args.target} {args.service!r}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
