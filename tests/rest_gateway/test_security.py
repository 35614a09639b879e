"""Bearer tokens and TLS between the gateway and a service that requires them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rest_gateway.app import create_app
from tests.rest_gateway.conftest import gateway_settings

TOKEN = "gateway-test-token"


def test_the_gateway_token_or_the_callers_reaches_the_service(start_service: Any) -> None:
    service = start_service(auth_tokens=TOKEN)

    with TestClient(create_app(gateway_settings(service.target))) as bare:
        refused = bare.get("/v1/kinds")
        forwarded = bare.get("/v1/kinds", headers={"authorization": f"Bearer {TOKEN}"})
        ready = bare.get("/readyz")
    with TestClient(create_app(gateway_settings(service.target, grpc_token=TOKEN))) as armed:
        allowed = armed.get("/v1/kinds")
        callers_wins = armed.get("/v1/kinds", headers={"authorization": "Bearer wrong"})

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["code"] == "UNAUTHENTICATED"
    assert forwarded.status_code == 200
    assert ready.status_code == 200  # health checks need no token
    assert allowed.status_code == 200
    assert callers_wins.status_code == 401


def test_mutual_tls_to_the_service(start_service: Any, pki: Path) -> None:
    service = start_service(
        tls_cert_file=pki / "server.pem",
        tls_key_file=pki / "server.key",
        tls_client_ca_file=pki / "ca.pem",
    )
    trusted = gateway_settings(
        service.target,
        grpc_tls_ca_file=pki / "ca.pem",
        grpc_tls_cert_file=pki / "client.pem",
        grpc_tls_key_file=pki / "client.key",
    )

    with TestClient(create_app(trusted)) as http:
        assert http.get("/v1/kinds").status_code == 200
        assert http.get("/readyz").status_code == 200
    with TestClient(create_app(gateway_settings(service.target))) as plaintext:
        assert plaintext.get("/v1/kinds").status_code == 503


def test_half_a_client_certificate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="GRPC_TLS_KEY_FILE"):
        gateway_settings("127.0.0.1:1", grpc_tls_cert_file=tmp_path / "client.pem")
