"""deploy/k8s: valid against the Kubernetes schemas, and in step with the programs they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from ml_service.grpc.server import LIVENESS, READINESS
from tests.deploy.conftest import IMAGE, ROOT, check_command, load_all, settings_from

K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
# Native gRPC probes are GA from 1.27 on; the newest schema the package ships comes last.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
PARTS = {"ml-service": "ml_service", "rest-gateway": "rest_gateway", "ui": "ui"}


def resources() -> list[dict[str, Any]]:
    """Every object in every manifest."""
    return [doc for path in MANIFESTS for doc in load_all(path)]


def find(kind: str, name: str) -> dict[str, Any]:
    """The one object of a kind and name."""
    (found,) = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """A Deployment's one container."""
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = only
    return found


def env(c: dict[str, Any]) -> dict[str, str]:
    """A container's literal environment."""
    return {e["name"]: e["value"] for e in c.get("env", [])}


def settings(name: str) -> Any:
    """The settings the Deployment's container runs with."""
    return settings_from(PARTS[name], env(container(find("Deployment", name))))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schemas(path: Path, version: str) -> None:
    for resource in load_all(path):
        # strict: an unknown or misspelt field is an error, not silently ignored.
        kubernetes_validate.validate(resource, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


def test_each_part_has_a_deployment_and_a_service() -> None:
    kinds = {(r["kind"], r["metadata"]["name"]) for r in resources()}
    for name in PARTS:
        assert {("Deployment", name), ("Service", name)} <= kinds


@pytest.mark.parametrize("name", PARTS)
def test_each_container_runs_its_part_from_the_image(name: str) -> None:
    c = container(find("Deployment", name))
    assert c["image"] == IMAGE
    assert "command" not in c  # args only: the image's entrypoint (tini) stays PID 1
    assert check_command(c["args"]) == PARTS[name]
    s = settings(name)
    assert s.host == "0.0.0.0"
    assert [p["containerPort"] for p in c["ports"]] == [s.port]


@pytest.mark.parametrize("name", PARTS)
def test_every_container_has_requests_and_limits(name: str) -> None:
    limits = container(find("Deployment", name))["resources"]
    for key in ("requests", "limits"):
        assert set(limits[key]) == {"cpu", "memory"}


@pytest.mark.parametrize("name", PARTS)
def test_pods_run_as_the_images_non_root_user(name: str) -> None:
    pod = find("Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # USER in the Dockerfile
    assert container(find("Deployment", name))["securityContext"]["allowPrivilegeEscalation"] is (
        False
    )


@pytest.mark.parametrize("name", PARTS)
def test_services_select_their_pods_and_named_ports(name: str) -> None:
    deployment, service = find("Deployment", name), find("Service", name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    names = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in names
        assert port["port"] == names[port["targetPort"]]


def test_service_probes_use_grpc_health_names() -> None:
    c = container(find("Deployment", "ml-service"))
    port = settings("ml-service").port
    expected = {
        "startupProbe": LIVENESS,
        "livenessProbe": LIVENESS,
        "readinessProbe": READINESS,
    }
    for probe, service in expected.items():
        assert c[probe]["grpc"] == {"port": port, "service": service}
    assert READINESS == "mlops.v1.readiness" and LIVENESS == "mlops.v1.liveness"


def test_http_probes_use_the_gateway_health_routes() -> None:
    gateway = container(find("Deployment", "rest-gateway"))
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for name in ("rest-gateway", "ui"):
        c = container(find("Deployment", name))
        ports = {p["name"] for p in c["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["port"] in ports


def test_the_parts_find_each_other_by_service_name() -> None:
    service_port = find("Service", "ml-service")["spec"]["ports"][0]["port"]
    gateway_port = find("Service", "rest-gateway")["spec"]["ports"][0]["port"]
    assert settings("rest-gateway").grpc_target == f"ml-service:{service_port}"
    assert settings("ui").gateway_url == f"http://rest-gateway:{gateway_port}"


def test_the_store_is_on_a_claim_with_one_replica_recreated() -> None:
    deployment = find("Deployment", "ml-service")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
    (volume,) = claims
    assert mounts[volume] == str(settings("ml-service").data_dir)
    claim = find("PersistentVolumeClaim", claims[volume])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroup"] == 10001  # the volume is writable by the user
    # Running calls get the service's grace before the kubelet's SIGKILL.
    assert pod["terminationGracePeriodSeconds"] > settings("ml-service").grace_seconds


def test_only_the_service_holds_state() -> None:
    for name in ("rest-gateway", "ui"):
        volumes = find("Deployment", name)["spec"]["template"]["spec"].get("volumes", [])
        assert all("persistentVolumeClaim" not in v for v in volumes)
