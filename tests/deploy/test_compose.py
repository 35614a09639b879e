"""compose.yaml: valid Compose Specification, and in step with the real CLIs and settings."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServiceThread
from tests.deploy.conftest import IMAGE, ROOT, check_command, settings_from

PARTS = {"ml-service": "ml_service", "rest-gateway": "rest_gateway", "ui": "ui"}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, from either of Compose's two spellings."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def container_ports(service: dict[str, Any]) -> set[int]:
    """Container ports published by a service ("host_ip:host:container" short syntax)."""
    return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}


def test_compose_file_matches_the_compose_spec_schema() -> None:
    # check-jsonschema vendors the compose-spec schema: no network needed.
    tool = shutil.which("check-jsonschema", path=str(ROOT / ".venv" / "bin")) or shutil.which(
        "check-jsonschema"
    )
    assert tool, "check-jsonschema is missing (dev dependency)"
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run a part of this project (not PostgreSQL or MinIO)."""
    return {n: s for n, s in compose["services"].items() if s["image"] == IMAGE}


def test_compose_is_the_spec_not_a_legacy_version(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    default = {n for n, s in compose["services"].items() if "profiles" not in s}
    assert default == set(PARTS)  # `docker compose up` starts the embedded stack, nothing else


def test_one_image_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for service in ours(compose).values():
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def test_the_scaled_profile_runs_two_stateless_replicas_behind_one_gateway(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    scaled = {n for n, s in services.items() if "scaled" in s.get("profiles", [])}
    assert {"postgres", "minio", "ml-service-a", "ml-service-b", "rest-gateway-scaled"} <= scaled
    aliases = set()
    for name in ("ml-service-a", "ml-service-b"):
        replica = services[name]
        assert check_command(replica["command"]) == "ml_service"
        settings = settings_from("ml_service", environment(replica))
        assert settings.shared and settings.artifact_uri.startswith("s3://")
        assert "@postgres:5432/" in settings.database_url
        assert environment(replica)["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert "volumes" not in replica  # nothing of the store lives in the container
        (alias,) = replica["networks"]["default"]["aliases"]
        aliases.add((alias, settings.port))
    ((alias, port),) = aliases  # both answer to one name on one port
    gateway = settings_from("rest_gateway", environment(services["rest-gateway-scaled"]))
    assert gateway.grpc_target == f"dns:///{alias}:{port}"


@pytest.mark.parametrize(("name", "module"), PARTS.items())
def test_each_service_runs_its_part_with_real_settings(
    compose: dict[str, Any], name: str, module: str
) -> None:
    service = compose["services"][name]
    assert check_command(service["command"]) == module
    settings = settings_from(module, environment(service))
    assert settings.host == "0.0.0.0"  # reachable from the other containers
    assert container_ports(service) == {settings.port}


def test_the_parts_find_each_other_by_service_name(compose: dict[str, Any]) -> None:
    services = compose["services"]
    service = settings_from("ml_service", environment(services["ml-service"]))
    gateway = settings_from("rest_gateway", environment(services["rest-gateway"]))
    ui = settings_from("ui", environment(services["ui"]))
    assert gateway.grpc_target == f"ml-service:{service.port}"
    assert ui.gateway_url == f"http://rest-gateway:{gateway.port}"


def test_start_order_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "depends_on" not in services["ml-service"]
    assert services["rest-gateway"]["depends_on"] == {
        "ml-service": {"condition": "service_healthy"}
    }
    assert services["ui"]["depends_on"] == {"rest-gateway": {"condition": "service_healthy"}}
    # Every long-running service; minio-bucket is a one-shot job others wait to complete.
    for name, service in services.items():
        if name != "minio-bucket":
            assert service["healthcheck"]["test"][0] == "CMD"  # exec form: no shell in between
    for name in ("ml-service-a", "ml-service-b"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "minio-bucket": {"condition": "service_completed_successfully"},
        }


def test_the_data_directory_is_a_named_volume(compose: dict[str, Any]) -> None:
    service = compose["services"]["ml-service"]
    data_dir = settings_from("ml_service", environment(service)).data_dir
    assert service["volumes"] == [f"model-data:{data_dir}"]
    assert "model-data" in compose["volumes"]
    for name in ("rest-gateway", "ui"):
        assert "volumes" not in compose["services"][name]  # stateless


def test_stop_grace_outlasts_the_service_grace(compose: dict[str, Any]) -> None:
    service = compose["services"]["ml-service"]
    grace = settings_from("ml_service", environment(service)).grace_seconds
    assert int(service["stop_grace_period"].removesuffix("s")) > grace


def test_service_healthcheck_asks_readiness_on_its_port(
    compose: dict[str, Any], shared_service: ServiceThread
) -> None:
    service = compose["services"]["ml-service"]
    command = service["healthcheck"]["test"][1:]
    assert command[:3] == ["python", "-m", "ml_service.healthcheck"]
    port = settings_from("ml_service", environment(service)).port
    target = command[command.index("--target") + 1]
    assert target == f"127.0.0.1:{port}"
    assert command[command.index("--service") + 1] == "mlops.v1.readiness"
    # The very command, pointed at a real service on a free port, passes.
    command[command.index("--target") + 1] = shared_service.target
    result = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


class Answer(http.server.BaseHTTPRequestHandler):
    """Answer every GET with the status the server was told to give."""

    def do_GET(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def http_server() -> Iterator[http.server.HTTPServer]:
    """A loopback HTTP server whose answer a test sets."""
    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize(("name", "module", "path"), [
    ("rest-gateway", "rest_gateway", "/readyz"),
    ("ui", "ui", "/"),
])  # fmt: skip
def test_http_healthchecks_pass_on_200_only(
    compose: dict[str, Any],
    http_server: http.server.HTTPServer,
    name: str,
    module: str,
    path: str,
) -> None:
    service = compose["services"][name]
    kind, python, flag, code = service["healthcheck"]["test"]
    assert (kind, python, flag) == ("CMD", "python", "-c")
    port = settings_from(module, environment(service)).port
    url = f"http://127.0.0.1:{port}{path}"
    assert f"'{url}'" in code

    def run(status: int | None) -> int:
        if status is None:  # nothing listens
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                free = s.getsockname()[1]
            target = f"http://127.0.0.1:{free}{path}"
        else:
            http_server.status = status  # type: ignore[attr-defined]
            target = f"http://127.0.0.1:{http_server.server_port}{path}"
        local = code.replace(url, target)
        done = subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30)
        return done.returncode

    assert run(200) == 0
    assert run(503) != 0
    assert run(None) != 0


def test_the_ray_profile_runs_a_head_a_worker_and_a_replica_that_trains_on_them(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    ray = {n for n, s in services.items() if "ray" in s.get("profiles", [])}
    assert ray == {"ray-head", "ray-worker", "ml-service-ray"}
    for name in ray:
        # The image built with Ray: the actors import what the replica imports.
        assert services[name]["image"] == "mlops-service-ray:0.1.0"
        assert services[name]["build"]["args"] == {"EXTRAS": "ray"}
    head, worker = services["ray-head"]["command"], services["ray-worker"]["command"]
    assert head[:4] == ["ray", "start", "--head", "--block"]
    client_port = head[head.index("--ray-client-server-port") + 1]
    assert head[head.index("--num-cpus") + 1] == "0"  # the head trains nothing
    gcs = f"ray-head:{head[head.index('--port') + 1]}"
    assert worker[:4] == ["ray", "start", "--address", gcs]
    replica = services["ml-service-ray"]
    assert check_command(replica["command"]) == "ml_service"
    settings = settings_from("ml_service", environment(replica))
    assert settings.training_executor == "ray"
    assert settings.ray_address == f"ray://ray-head:{client_port}"
    assert settings.ray_cpus <= float(worker[worker.index("--num-cpus") + 1])
    # A job asking for more CPUs than the worker has would wait, then fail.
    assert settings.max_job_cpus <= float(worker[worker.index("--num-cpus") + 1])
    assert settings.shared and settings.artifact_uri.startswith("s3://")

    # The actors reach the bucket as the replica does.
    def aws(service: dict[str, Any]) -> dict[str, str]:
        return {k: v for k, v in environment(service).items() if k.startswith("AWS_")}

    for name in ("ray-head", "ray-worker"):
        assert aws(services[name]) == aws(replica)
    # Without it Ray Client's per-client server dies at birth (grpcio's fork handlers).
    assert environment(services["ray-head"])["GRPC_ENABLE_FORK_SUPPORT"] == "false"
