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


def test_tls_files_the_gateway_cannot_use_are_named_at_start(pki: Path) -> None:
    # Was a traceback at start for a missing CA file; a key of another certificate or a CA
    # file that is not PEM started a gateway that answered every request 503 "try again".
    for overrides, words in [
        ({"grpc_tls_ca_file": pki / "absent.pem"},
         f"MLOPS_GATEWAY_GRPC_TLS_CA_FILE {pki / 'absent.pem'}: No such file or directory"),
        ({"grpc_tls_ca_file": pki / "ca.key"},
         f"MLOPS_GATEWAY_GRPC_TLS_CA_FILE {pki / 'ca.key'} holds no PEM certificate"),
        ({"grpc_tls_cert_file": pki / "client.pem", "grpc_tls_key_file": pki / "server.key"},
         f"MLOPS_GATEWAY_GRPC_TLS_KEY_FILE {pki / 'server.key'} is not the private key"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match="MLOPS_GATEWAY_GRPC_TLS") as refused:
            gateway_settings("127.0.0.1:1", **overrides)
        assert words in str(refused.value)


def test_a_token_read_from_a_file_reaches_the_service(start_service: Any) -> None:
    # A token ending in a newline (a mounted Secret, `echo tok > file`) was a 500 "internal
    # error" on every request that brought no Authorization of its own, /readyz included.
    service = start_service(auth_tokens=TOKEN)
    with TestClient(create_app(gateway_settings(service.target, grpc_token=f"{TOKEN}\n"))) as http:
        assert http.get("/v1/kinds").status_code == 200
        assert http.get("/readyz").status_code == 200


def test_an_authorization_header_outside_ascii_is_a_401_naming_it(start_service: Any) -> None:
    # Was a 500 "internal error": gRPC refused the header before the call left the gateway.
    service = start_service(auth_tokens=TOKEN)
    with TestClient(create_app(gateway_settings(service.target))) as http:
        answer = http.get(
            "/v1/kinds", headers={"authorization": "Bearer t\u00f6k".encode("latin-1")}
        )
        assert (
            http.get("/v1/kinds", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert (
        "Authorization header holds a character outside printable ASCII" in answer.json()["detail"]
    )


def test_tls_set_up_wrong_says_what_to_set_in_readyz_and_the_log(
    start_service: Any, pki: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Both were "The model service is not reachable (UNAVAILABLE)" and, per request, "try
    # again in a moment" with gRPC's own words in the log: a setting to change, not a wait.
    tls = start_service(
        tmp_path / "tls", tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key"
    )
    plain = start_service(tmp_path / "plain")

    with caplog.at_level("INFO", logger="rest_gateway"):
        with TestClient(create_app(gateway_settings(tls.target))) as to_tls:
            ready = to_tls.get("/readyz").json()["detail"]
            to_tls.get("/v1/kinds")
        logged = caplog.text
        caplog.clear()
        settings = gateway_settings(plain.target, grpc_tls_ca_file=pki / "ca.pem")
        with TestClient(create_app(settings)) as to_plain:
            told = to_plain.get("/readyz").json()["detail"]

    assert ready == (
        "The model service is not reachable: it closed the connection at once: the service may"
        " serve TLS only (MLOPS_GATEWAY_GRPC_TLS=true, or MLOPS_GATEWAY_GRPC_TLS_CA_FILE for a"
        " private CA)."
    )
    assert f"cannot reach the service at {tls.target}: it closed the connection" in logged
    assert told == (
        "The model service is not reachable: the TLS handshake failed: the service does not"
        " serve TLS (unset MLOPS_GATEWAY_GRPC_TLS and MLOPS_GATEWAY_GRPC_TLS_CA_FILE)."
    )
