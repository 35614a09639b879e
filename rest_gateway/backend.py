"""The one gRPC channel, the stubs on it, and the dependency that hands them to routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import grpc
from fastapi import Depends, Request
from grpc_health.v1 import health_pb2_grpc
from mlops.v1 import model_service_pb2_grpc, prediction_service_pb2_grpc, training_service_pb2_grpc

from rest_gateway.config import GatewaySettings

ChannelFactory = Callable[[GatewaySettings], grpc.aio.Channel]


def insecure_channel(settings: GatewaySettings) -> grpc.aio.Channel:
    """Open a plaintext channel to the configured target."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # The default reconnect backoff grows to two minutes; a restarted service should be
        # found again within about a second.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", settings.reconnect_backoff_ms),
    ]
    return grpc.aio.insecure_channel(settings.grpc_target, options=options)


@dataclass
class Backend:
    """Stubs of every service on one channel, with the deadlines to use."""

    channel: grpc.aio.Channel
    settings: GatewaySettings
    models: Any = field(init=False)
    training: Any = field(init=False)
    predictions: Any = field(init=False)
    health: Any = field(init=False)

    def __post_init__(self) -> None:
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.training = training_service_pb2_grpc.TrainingServiceStub(self.channel)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    @property
    def timeout(self) -> float:
        """Deadline in seconds for a unary call."""
        return self.settings.rpc_timeout_seconds


async def get_backend(request: Request) -> Backend:
    """Return the backend opened by the app's lifespan (async: no threadpool hop)."""
    backend: Backend = request.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(get_backend)]
