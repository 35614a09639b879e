"""Service settings from the command line and MLOPS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mlops.setting_rules import LogLevel
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_client.credentials import bearer_token, certificates, key_pair

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything an operator can configure; every field has an MLOPS_<NAME> variable."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the gRPC server binds to.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    data_dir: Path = Field(
        Path("data"),
        description="Directory of the embedded store; in shared mode only scratch files.",
    )
    database_url: str = Field(
        "",
        description=(
            "Metadata database: empty for SQLite in the data directory; postgresql://user:"
            "password@host:5432/db for shared mode, where replicas share one database."
        ),
    )
    artifact_uri: str = Field(
        "",
        description=(
            "Where artifacts and datasets live: empty for the data directory; s3://bucket/prefix"
            " for shared mode (AWS_ENDPOINT_URL, AWS_REGION and the AWS credential variables)."
        ),
    )
    max_concurrent_trainings: int = Field(
        1, ge=1, le=64, description="Training worker processes that may run at once."
    )
    max_queued_jobs: int = Field(
        16, ge=0, le=10_000, description="Jobs that may wait for a worker; more are refused."
    )
    max_message_bytes: int = Field(
        64 * MiB, ge=MiB, description="Largest single gRPC message received or sent."
    )
    max_upload_bytes: int = Field(
        2048 * MiB, ge=MiB, description="Largest training upload (sum of Arrow pieces)."
    )
    max_upload_rows: int = Field(
        50_000_000, ge=1, description="Most rows accepted in one training upload."
    )
    max_columns: int = Field(2000, ge=1, description="Most columns accepted in a training upload.")
    max_predict_rows: int = Field(
        1_000_000, ge=1, description="Most rows in one Predict call or one stream batch."
    )
    max_predict_values: int = Field(
        8_000_000,
        ge=1,
        description=(
            "Most output values (rows x (classes + 1)) in one Predict call or one stream batch;"
            " checked before predicting."
        ),
    )
    job_lease_seconds: float = Field(
        10.0,
        ge=1,
        description=(
            "Shared mode: a job whose replica has not renewed its lease for this long is"
            " failed by another replica."
        ),
    )
    training_executor: Literal["local", "ray"] = Field(
        "local",
        description=(
            "Where training runs: local worker processes, or ray (one Ray actor per job on"
            " the cluster at MLOPS_RAY_ADDRESS)."
        ),
    )
    ray_address: str = Field(
        "auto",
        description=(
            "The Ray cluster, as ray.init takes it: auto (a node of this machine),"
            " host:port of the head, or ray://host:10001."
        ),
    )
    ray_namespace: str = Field(
        "mlops", min_length=1, description="Ray namespace of the training actors."
    )
    ray_cpus: float = Field(
        1.0,
        gt=0,
        le=1024,
        description="CPUs each training actor asks Ray for (and threads it uses).",
    )
    ray_memory_mb: int = Field(
        0, ge=0, description="Memory each training actor asks Ray for, in MiB; 0 asks for none."
    )
    max_job_cpus: float = Field(
        8.0,
        gt=0,
        le=1024,
        description="Most CPUs one training job may ask for (TrainingResources.cpus).",
    )
    max_job_memory_mb: int = Field(
        65_536,
        ge=1,
        description=(
            "Most memory one training job may ask for, in MiB (TrainingResources.memory_mb;"
            " the Ray executor only)."
        ),
    )
    ray_start_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description=(
            "A job whose Ray actor has not started within this time (no node has room) fails."
        ),
    )
    model_cache_size: int = Field(8, ge=1, description="Loaded models kept in memory (LRU).")
    reflection: bool = Field(True, description="Serve gRPC server reflection.")
    grace_seconds: float = Field(
        10.0, ge=0, description="How long a graceful stop lets running calls finish."
    )
    cancel_grace_seconds: float = Field(
        1.0, ge=0, description="How long a cancelled worker may exit before it is killed."
    )
    auth_tokens: str = Field(
        "",
        description="Comma-separated bearer tokens; when set, every RPC but health needs one.",
    )
    tls_cert_file: Path | None = Field(None, description="PEM certificate: serve gRPC over TLS.")
    tls_key_file: Path | None = Field(None, description="PEM private key of the certificate.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle: require client certificates signed by it (mutual TLS)."
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="HTTP port serving Prometheus metrics at /metrics on the same host; 0: off.",
    )
    log_level: LogLevel = Field("INFO", description="Python logging level.")
    log_json: bool = Field(True, description="Log one JSON object per line.")

    @property
    def tokens(self) -> list[str]:
        """The configured bearer tokens."""
        return [t.strip() for t in self.auth_tokens.split(",") if t.strip()]

    @property
    def shared(self) -> bool:
        """Whether replicas share the store (PostgreSQL), rather than one embedded SQLite."""
        return self.database_url.startswith("postgresql")

    @property
    def tls_mode(self) -> str:
        """How clients reach the server: "off", "on" or "mutual"."""
        if self.tls_cert_file is None:
            return "off"
        return "mutual" if self.tls_client_ca_file is not None else "on"

    @field_validator("auth_tokens")
    @classmethod
    def _some_token(cls, value: str) -> str:
        # Blanks and commas alone would parse to no token, which silently turns auth off.
        if value and not value.replace(",", "").strip():
            raise ValueError(
                "MLOPS_AUTH_TOKENS holds only blanks and commas, no token; set one or more"
                " tokens, or leave it unset to serve without authentication"
            )
        for token in value.split(","):
            # A token no client can send would be a door nobody can open, silently.
            bearer_token(token, "MLOPS_AUTH_TOKENS")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgresql+psycopg://", "sqlite:///")):
            raise ValueError(
                "MLOPS_DATABASE_URL must start with postgresql:// (or sqlite:/// for a file);"
                " leave it unset for SQLite in the data directory"
            )
        # SQLite creates its file, not the directories above it: "unable to open database
        # file" came from deep in the start, as a traceback.
        folder = (
            Path(value.removeprefix("sqlite:///")).parent
            if value.startswith("sqlite:///")
            else None
        )
        if folder is not None and value != "sqlite:///:memory:" and not folder.is_dir():
            raise ValueError(
                f"MLOPS_DATABASE_URL names a SQLite file in {folder}, which is not a directory;"
                " create it, or leave MLOPS_DATABASE_URL unset for SQLite in the data directory"
            )
        return value

    @field_validator("artifact_uri")
    @classmethod
    def _known_artifacts(cls, value: str) -> str:
        if value and not value.startswith(("s3://", "file://", "/")):
            raise ValueError(
                "MLOPS_ARTIFACT_URI must be s3://bucket/prefix or a local path;"
                " leave it unset for the data directory"
            )
        if value.startswith("s3://") and not value.removeprefix("s3://").strip("/"):
            raise ValueError("MLOPS_ARTIFACT_URI names no bucket: give s3://bucket/prefix")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both MLOPS_TLS_CERT_FILE and MLOPS_TLS_KEY_FILE, or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("MLOPS_TLS_CLIENT_CA_FILE needs MLOPS_TLS_CERT_FILE as well")
        if self.tls_cert_file is not None and self.tls_key_file is not None:
            key_pair(
                self.tls_cert_file, self.tls_key_file, "MLOPS_TLS_CERT_FILE", "MLOPS_TLS_KEY_FILE"
            )
        if self.tls_client_ca_file is not None:
            certificates(self.tls_client_ca_file, "MLOPS_TLS_CLIENT_CA_FILE")
        return self
