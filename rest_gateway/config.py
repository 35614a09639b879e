"""Gateway settings from the command line and MLOPS_GATEWAY_* environment variables."""

from __future__ import annotations

from pathlib import Path

from mlops.setting_rules import LogLevel
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_client.credentials import certificates, key_pair, token_to_send

MiB = 1024 * 1024


class GatewaySettings(BaseSettings):
    """Everything an operator can configure; every field has an MLOPS_GATEWAY_<NAME> variable."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_GATEWAY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port.")
    grpc_target: str = Field("127.0.0.1:50051", description="host:port of the gRPC service.")
    grpc_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token sent to the service when a request brings no Authorization.",
    )
    grpc_tls: bool = Field(False, description="Reach the service over TLS (system roots).")
    grpc_tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle to trust instead of the system roots; implies TLS."
    )
    grpc_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS; implies TLS."
    )
    grpc_tls_key_file: Path | None = Field(None, description="PEM key of the client certificate.")
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
    max_columns: int = Field(
        16_384,
        ge=1,
        description=(
            "Most columns in JSON rows or a CSV body (each costs ~1.5 kB to type, ~9 kB to"
            " read as CSV); 413 above."
        ),
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
    metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    log_level: LogLevel = Field("INFO", description="Python logging level.")

    @property
    def tls(self) -> bool:
        """Whether the channel to the service uses TLS."""
        return (
            self.grpc_tls
            or self.grpc_tls_ca_file is not None
            or self.grpc_tls_cert_file is not None
        )

    @field_validator("grpc_token")
    @classmethod
    def _real_token(cls, value: SecretStr) -> SecretStr:
        # A blank token would be sent as "Bearer " and look like auth while being none.
        secret = value.get_secret_value()
        if secret and not secret.replace(",", "").strip():
            raise ValueError(
                "MLOPS_GATEWAY_GRPC_TOKEN holds only blanks and commas, no token; set a"
                " token, or leave it unset to pass on the callers' own Authorization"
            )
        return SecretStr(token_to_send(secret, "MLOPS_GATEWAY_GRPC_TOKEN"))

    @model_validator(mode="after")
    def _client_pair(self) -> GatewaySettings:
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise ValueError(
                "set both MLOPS_GATEWAY_GRPC_TLS_CERT_FILE and MLOPS_GATEWAY_GRPC_TLS_KEY_FILE"
            )
        if self.grpc_tls_cert_file is not None and self.grpc_tls_key_file is not None:
            key_pair(
                self.grpc_tls_cert_file,
                self.grpc_tls_key_file,
                "MLOPS_GATEWAY_GRPC_TLS_CERT_FILE",
                "MLOPS_GATEWAY_GRPC_TLS_KEY_FILE",
            )
        if self.grpc_tls_ca_file is not None:
            certificates(self.grpc_tls_ca_file, "MLOPS_GATEWAY_GRPC_TLS_CA_FILE")
        return self
