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
    gateway = settings_from("rest_gateway", environment(services["rest-gateway"]))
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]
    }
    assert service.metrics_port > 0 and gateway.metrics
    assert targets == {
        "ml-service": [f"ml-service:{service.metrics_port}"],
        "rest-gateway": [f"rest-gateway:{gateway.port}"],
    }


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
