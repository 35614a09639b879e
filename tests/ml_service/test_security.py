"""Bearer tokens and TLS (optionally mutual) on the gRPC server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc

from ml_service.config import Settings

TOKEN = "s3cret-token-for-tests"


def serving(channel: grpc.Channel, service: str = "") -> bool:
    request = health_pb2.HealthCheckRequest(service=service)
    response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=10)
    return response.status == health_pb2.HealthCheckResponse.SERVING


def test_tokens_guard_every_rpc_but_health(start_service: Any) -> None:
    service = start_service(auth_tokens=f"other-token,{TOKEN}")
    with grpc.insecure_channel(service.target) as channel:
        assert serving(channel) and serving(channel, "mlops.v1.readiness")
        models = ms_grpc.ModelServiceStub(channel)
        # Each refusal says which of the three it is: none sent, not a bearer token, unknown.
        for metadata, said in [
            (None, "this service needs a bearer token: send the header authorization: Bearer"),
            ([("authorization", TOKEN)], "the authorization header is not a bearer token"),
            ([("authorization", "Bearer wrong")], "the bearer token is not one this service"),
            ([("authorization", f"Bearer Bearer {TOKEN}")], "the bearer token is not one"),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                models.ListModelKinds(ms.ListModelKindsRequest(), metadata=metadata, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert err.value.details().startswith(said)
            assert TOKEN not in err.value.details()

        watch = ts_grpc.TrainingServiceStub(channel).WatchTrainingJob(
            ts.WatchTrainingJobRequest(job_id="j-1"), timeout=10
        )
        with pytest.raises(grpc.RpcError) as err:
            next(watch)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

        good = [("authorization", f"Bearer {TOKEN}")]
        kinds = models.ListModelKinds(ms.ListModelKindsRequest(), metadata=good, timeout=10)
        assert {k.name for k in kinds.kinds} == {"catboost", "logistic_regression"}


def secure_channel(target: str, pki: Path, client_cert: bool) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if client_cert else None,
        certificate_chain=(pki / "client.pem").read_bytes() if client_cert else None,
    )
    return grpc.secure_channel(target, credentials)


def test_tls(start_service: Any, pki: Path) -> None:
    service = start_service(tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key")
    with secure_channel(service.target, pki, client_cert=False) as channel:
        assert serving(channel, "mlops.v1.readiness")
    with grpc.insecure_channel(service.target) as plain, pytest.raises(grpc.RpcError) as err:
        serving(plain)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate(start_service: Any, pki: Path) -> None:
    service = start_service(
        tls_cert_file=pki / "server.pem",
        tls_key_file=pki / "server.key",
        tls_client_ca_file=pki / "ca.pem",
    )
    with secure_channel(service.target, pki, client_cert=True) as channel:
        assert serving(channel)
    with secure_channel(service.target, pki, client_cert=False) as channel:
        with pytest.raises(grpc.RpcError) as err:
            serving(channel)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_half_configured_tls_is_refused(tmp_path: Path) -> None:
    from ml_service.config import Settings

    with pytest.raises(ValueError, match="TLS_KEY_FILE"):
        Settings(tls_cert_file=tmp_path / "cert.pem")


def test_a_refused_call_is_counted_and_named_like_any_other(start_service: Any) -> None:
    service = start_service(auth_tokens=TOKEN)
    assert service.server is not None
    registry = service.server.core.telemetry.metrics.registry
    refused = {"method": "ListModelKinds", "code": "UNAUTHENTICATED"}
    with grpc.insecure_channel(service.target) as channel:
        models = ms_grpc.ModelServiceStub(channel)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as err:
                models.ListModelKinds(
                    ms.ListModelKindsRequest(),
                    metadata=[("authorization", "Bearer wrong"), ("x-request-id", "ops-42")],
                    timeout=10,
                )
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert ("x-request-id", "ops-42") in err.value.trailing_metadata()

    assert registry.get_sample_value("mlops_rpc_requests_total", refused) == 2
    assert registry.get_sample_value("mlops_rpc_duration_seconds_count", refused) == 2


def test_tls_files_the_service_cannot_use_are_named_at_start(pki: Path, tmp_path: Path) -> None:
    # Was "cannot listen on 127.0.0.1:50051: is the port in use?" after three lines of gRPC's
    # log ("Invalid private key"), and "[Errno 2] No such file or directory: 'c.pem'".
    cert, key = pki / "server.pem", pki / "server.key"
    for overrides, words in [
        ({"tls_key_file": pki / "client.key"},
         f"MLOPS_TLS_KEY_FILE {pki / 'client.key'} is not the private key of the certificate"
         f" in MLOPS_TLS_CERT_FILE {cert}"),
        ({"tls_cert_file": tmp_path / "absent.pem"},
         f"MLOPS_TLS_CERT_FILE {tmp_path / 'absent.pem'}: No such file or directory"),
        ({"tls_cert_file": key}, "MLOPS_TLS_CERT_FILE"),
        ({"tls_client_ca_file": key}, f"MLOPS_TLS_CLIENT_CA_FILE {key} holds no PEM certificate"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match="MLOPS_TLS") as refused:
            Settings(**{"tls_cert_file": cert, "tls_key_file": key, **overrides})
        assert words in str(refused.value)


def test_a_token_no_client_can_send_is_refused_without_repeating_it(tmp_path: Path) -> None:
    # gRPC metadata is printable ASCII: no client could ever have sent that token.
    done = subprocess.run(
        [sys.executable, "-m", "ml_service", "--port", "0", "--data-dir", str(tmp_path)],
        env={**os.environ, "MLOPS_AUTH_TOKENS": "good,s3cr\u00e9t"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "MLOPS_AUTH_TOKENS holds a space, a control character or a letter outside ASCII" in (
        done.stderr
    )
    assert "s3cr" not in done.stderr and "Traceback" not in done.stderr
