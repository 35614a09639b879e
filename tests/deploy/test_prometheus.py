"""Prometheus scrape configuration for compose and Kubernetes, in step with the settings."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import yaml

from tests.deploy.conftest import ROOT, settings_from
from tests.deploy.test_compose import environment
from tests.deploy.test_kubernetes import container, find

CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def test_the_scrape_config_is_valid_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: bin/test installs Debian's prometheus"
    checked = subprocess.run(
        [promtool, "check", "config", str(CONFIG)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_scrapes_the_ports_the_parts_serve_metrics_on(compose: dict[str, Any]) -> None:
    assert "deploy/prometheus/compose.yaml" in compose["include"]
    services = compose["services"]
    service = settings_from("ml_service", environment(services["ml-service"]))
    assert service.metrics_port > 0
    assert scraped("ml-service", service.metrics_port)
    gateways = [n for n, s in services.items() if s.get("command", [])[:3] == [
        "python", "-m", "rest_gateway"]]  # fmt: skip
    assert {"rest-gateway", "rest-gateway-scaled"} <= set(gateways)
    for name in gateways:
        gateway = settings_from("rest_gateway", environment(services[name]))
        assert gateway.metrics and scraped(name, gateway.port), name
    assert {job["job_name"] for job in scrape_jobs()} == {"ml-service", "rest-gateway"}


def test_kubernetes_pods_are_annotated_with_their_metrics_ports() -> None:
    for name, module in (("ml-service", "ml_service"), ("rest-gateway", "rest_gateway")):
        deployment = find("Deployment", name)
        env = {e["name"]: e["value"] for e in container(deployment).get("env", [])}
        settings = settings_from(module, env)
        port = settings.metrics_port if name == "ml-service" else settings.port
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert port > 0


def scrape_jobs() -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = yaml.safe_load(CONFIG.read_text())["scrape_configs"]
    return jobs


def scraped(host: str, port: int) -> bool:
    """Whether a scrape job reaches host:port: a static target, or every address DNS gives
    for the compose service name (which is what `docker compose --scale` multiplies)."""
    for job in scrape_jobs():
        for static in job.get("static_configs", []):
            if f"{host}:{port}" in static["targets"]:
                return True
        for dns in job.get("dns_sd_configs", []):
            if host in dns["names"] and dns.get("type", "SRV") == "A" and dns["port"] == port:
                return True
    return False


def service_containers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every compose service, in any profile, that runs the model service."""
    return {
        name: s
        for name, s in compose["services"].items()
        if s.get("command", [])[:3] == ["python", "-m", "ml_service"]
    }


def test_every_compose_service_replica_serves_metrics_and_is_scraped(
    compose: dict[str, Any],
) -> None:
    replicas = service_containers(compose)
    assert {"ml-service", "ml-service-a", "ml-service-b", "ml-service-ray"} <= set(replicas)
    for name, service in replicas.items():
        settings = settings_from("ml_service", environment(service))
        assert settings.metrics_port > 0, f"{name} sets no MLOPS_METRICS_PORT"
        assert scraped(name, settings.metrics_port), f"no scrape job reaches {name}"


def test_scaled_out_compose_replicas_are_each_scraped() -> None:
    # A static "ml-service-a:9464" is one of the addresses DNS has for a scaled service:
    # Prometheus would scrape one replica of `docker compose --scale ml-service-a=3`.
    for job in scrape_jobs():
        if job["job_name"] == "ml-service":
            assert "static_configs" not in job
            assert job["dns_sd_configs"]


def test_kubernetes_service_pods_are_annotated_in_every_overlay() -> None:
    from tests.deploy.test_kubernetes import resources
    from tests.deploy.test_kubernetes_ray import render as render_ray
    from tests.deploy.test_kubernetes_scaled import literal_env
    from tests.deploy.test_kubernetes_scaled import render as render_scaled

    for overlay, objects in (("base", resources()), ("scaled", render_scaled()),
                             ("ray", render_ray())):  # fmt: skip
        runs_service = [
            o
            for o in objects
            if o["kind"] == "Deployment"
            and container(o).get("args", [])[:3] == ["python", "-m", "ml_service"]
        ]
        assert runs_service, overlay
        for deployment in runs_service:
            settings = settings_from("ml_service", literal_env(container(deployment)))
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert settings.metrics_port > 0, overlay
            assert annotations["prometheus.io/scrape"] == "true", overlay
            assert annotations["prometheus.io/port"] == str(settings.metrics_port), overlay
