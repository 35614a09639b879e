"""The one gRPC channel, the stubs on it, and the dependency that hands them to routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import grpc
import inference
from fastapi import Depends, Request
from grpc_health.v1 import health_pb2_grpc
from mlops.v1 import model_service_pb2_grpc, prediction_service_pb2_grpc, training_service_pb2_grpc

from rest_gateway.config import GatewaySettings
from rest_gateway.problems import ProblemError
from rest_gateway.telemetry import outgoing_metadata

ChannelFactory = Callable[[GatewaySettings], grpc.aio.Channel]


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


def open_channel(settings: GatewaySettings) -> grpc.aio.Channel:
    """Open the channel to the configured target, over TLS when configured."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # The default reconnect backoff grows to two minutes; a restarted service should be
        # found again within about a second. (grpc.min_reconnect_backoff_ms is left alone: it
        # is the connect timeout too, and a busy host needs more than a few milliseconds.)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", settings.reconnect_backoff_ms),
        # A target that resolves to several replicas (dns:/// over a headless Service, or
        # ipv4:a,b) gets calls spread over all of them, not pinned to the first that answers.
        ("grpc.lb_policy_name", "round_robin"),
    ]
    if not settings.tls:
        return grpc.aio.insecure_channel(settings.grpc_target, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(settings.grpc_tls_ca_file),
        private_key=_read(settings.grpc_tls_key_file),
        certificate_chain=_read(settings.grpc_tls_cert_file),
    )
    return grpc.aio.secure_channel(settings.grpc_target, credentials, options=options)


@dataclass
class Backend:
    """Stubs of every service on one channel, opened for the app's lifetime."""

    channel: grpc.aio.Channel
    settings: GatewaySettings
    models: Any = field(init=False)
    training: Any = field(init=False)
    predictions: Any = field(init=False)
    health: Any = field(init=False)
    inference: Any = field(init=False)

    def __post_init__(self) -> None:
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.training = training_service_pb2_grpc.TrainingServiceStub(self.channel)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.inference = inference.GRPCInferenceServiceStub(self.channel)


@dataclass(slots=True)
class Calls:
    """One request's view of the backend: the stubs plus its deadline and credentials."""

    backend: Backend
    metadata: tuple[tuple[str, str], ...]

    @property
    def settings(self) -> GatewaySettings:
        """The gateway's settings."""
        return self.backend.settings

    @property
    def models(self) -> Any:
        """The ModelService stub."""
        return self.backend.models

    @property
    def training(self) -> Any:
        """The TrainingService stub."""
        return self.backend.training

    @property
    def predictions(self) -> Any:
        """The PredictionService stub."""
        return self.backend.predictions

    @property
    def health(self) -> Any:
        """The Health stub."""
        return self.backend.health

    @property
    def timeout(self) -> float:
        """Deadline in seconds for a unary call."""
        return self.backend.settings.rpc_timeout_seconds


async def get_calls(request: Request) -> Calls:
    """Return the backend with this request's credentials (async: no threadpool hop)."""
    backend: Backend = request.state.backend
    # The caller's own Authorization goes through, so the service decides per caller;
    # otherwise the gateway's configured token, if any.
    authorization = request.headers.get("authorization")
    if authorization is not None and not (authorization.isascii() and authorization.isprintable()):
        # gRPC metadata is printable ASCII: the call failed before it left, a 500.
        raise ProblemError(
            401,
            "the Authorization header holds a character outside printable ASCII;"
            " send Authorization: Bearer <token>",
            title="Unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if authorization is None and (token := backend.settings.grpc_token.get_secret_value()):
        authorization = f"Bearer {token}"
    metadata = outgoing_metadata()
    if authorization:
        metadata.append(("authorization", authorization))
    return Calls(backend, tuple(metadata))


BackendDep = Annotated[Calls, Depends(get_calls)]
