"""UI settings from the command line and MLOPS_UI_* environment variables."""

from __future__ import annotations

from urllib.parse import urlsplit

from mlops.setting_rules import LogLevel
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class UISettings(BaseSettings):
    """Everything an operator can configure; every field has an MLOPS_UI_<NAME> variable."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_UI_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the web server binds to.")
    port: int = Field(7860, ge=1, le=65535, description="HTTP port of the web UI.")
    gateway_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL of the REST gateway, e.g. http://gw:8000."
    )
    gateway_token: SecretStr | None = Field(
        None, description="Bearer token sent to the gateway, when it requires one."
    )
    timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for one gateway answer (not for a whole training)."
    )
    preview_rows: int = Field(10, ge=1, le=1000, description="CSV rows shown in a preview.")
    max_table_rows: int = Field(
        10_000, ge=1, description="Most rows the Predict tab loads into its editable table."
    )
    root_path: str = Field("", description="URL prefix when served behind a proxy, e.g. /ui.")
    log_level: LogLevel = Field("INFO", description="Python logging level.")

    @field_validator("gateway_url")
    @classmethod
    def _gateway_url(cls, value: str) -> str:
        # Without its scheme ("gateway:8000") every call failed, each saying the gateway
        # could not be reached.
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be the gateway's URL, http://host:port or https://host"
                " (e.g. http://rest-gateway:8000)"
            )
        return value.strip()
