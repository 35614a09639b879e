"""Gateway settings from the command line and MLOPS_GATEWAY_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class GatewaySettings(BaseSettings):
    """Everything an operator can configure; every field has an MLOPS_GATEWAY_<NAME> variable."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_GATEWAY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port.")
    grpc_target: str = Field("127.0.0.1:50051", description="host:port of the gRPC service.")
    rpc_timeout_seconds: float = Field(
        10.0, gt=0, description="Deadline of every unary gRPC call (get, list, delete, predict)."
    )
    probe_timeout_seconds: float = Field(
        1.0, gt=0, description="Deadline of the health check behind /readyz (probes time out)."
    )
    upload_timeout_seconds: float = Field(
        600.0, gt=0, description="Deadline of a training upload (the client-streaming call)."
    )
    wait_timeout_seconds: float = Field(
        3600.0, gt=0, description="Longest a ?wait=true training call or an event stream lasts."
    )
    max_body_bytes: int = Field(
        512 * MiB, ge=1024, description="Largest request body; larger bodies get 413."
    )
    max_json_bytes: int = Field(
        32 * MiB, ge=1024, description="Largest JSON body (rows become Python objects); 413 above."
    )
    max_message_bytes: int = Field(
        64 * MiB, ge=MiB, description="Largest gRPC message sent or received."
    )
    chunk_bytes: int = Field(
        1 * MiB, ge=64 * 1024, description="Size of the Arrow IPC pieces sent to the service."
    )
    csv_block_bytes: int = Field(
        1 * MiB, ge=64 * 1024, description="Bytes of CSV parsed per record batch."
    )
    reconnect_backoff_ms: int = Field(
        1000, ge=100, description="Longest wait between attempts to reach a gRPC service."
    )
    log_level: str = Field("INFO", description="Python logging level.")
