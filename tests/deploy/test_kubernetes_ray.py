"""deploy/k8s/ray: the KubeRay RayCluster and the replicas that train on it.

No schema of KubeRay's CRD ships offline, so the RayCluster is checked for structure, and
its pod templates, wrapped as Pods, against the Kubernetes schemas.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.deploy.conftest import ROOT, load_all, settings_from
from tests.deploy.test_kubernetes import VERSIONS, container
from tests.deploy.test_kubernetes_scaled import apply_patches, literal_env
from tests.deploy.test_kubernetes_scaled import render as render_scaled

OVERLAY = ROOT / "deploy" / "k8s" / "ray"


def render() -> list[dict[str, Any]]:
    """The scaled overlay plus the RayCluster, with this overlay's patches applied."""
    (kustomization,) = load_all(OVERLAY / "kustomization.yaml")
    assert kustomization["resources"] == ["../scaled", "raycluster.yaml"]
    objects = render_scaled() + load_all(OVERLAY / "raycluster.yaml")
    return apply_patches(objects, kustomization, OVERLAY)


def find(kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in render() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def cluster() -> dict[str, Any]:
    (found,) = [r for r in render() if r["kind"] == "RayCluster"]
    return found


def templates() -> dict[str, dict[str, Any]]:
    """The head's and each worker group's pod template, by group."""
    spec = cluster()["spec"]
    groups = {g["groupName"]: g["template"] for g in spec["workerGroupSpecs"]}
    return {"head": spec["headGroupSpec"]["template"], **groups}


def mebibytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def locked(package: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==")[1]
    raise AssertionError(f"{package} is not in requirements.lock")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_replicas_and_the_ray_pods_match_the_kubernetes_schemas(version: str) -> None:
    for resource in render():
        if resource["kind"] != "RayCluster":
            kubernetes_validate.validate(resource, version, strict=True)
    for group, template in templates().items():
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": group, **template["metadata"]},
        }
        kubernetes_validate.validate({**pod, "spec": template["spec"]}, version, strict=True)


def test_the_cluster_runs_the_locked_ray_on_the_replicas_image() -> None:
    resource = cluster()
    assert resource["apiVersion"] == "ray.io/v1"
    assert resource["spec"]["rayVersion"] == locked("ray")
    image = container(find("Deployment", "ml-service"))["image"]
    assert image != "mlops-service:0.1.0"  # the base image has no Ray
    for template in templates().values():
        (each,) = template["spec"]["containers"]
        assert each["image"] == image  # the same package, libraries, Ray and Python


def test_the_replicas_train_through_ray_client_on_the_heads_service() -> None:
    settings = settings_from(
        "ml_service",
        {
            **literal_env(container(find("Deployment", "ml-service"))),
            "MLOPS_DATABASE_URL": "postgresql://u:p@db:5432/mlops",
        },
    )
    head = cluster()["spec"]["headGroupSpec"]
    port = head["rayStartParams"]["ray-client-server-port"]
    (head_container,) = head["template"]["spec"]["containers"]
    assert int(port) in {p["containerPort"] for p in head_container["ports"]}
    assert settings.training_executor == "ray"
    # KubeRay names the head's Service <cluster>-head-svc.
    name = cluster()["metadata"]["name"]
    assert settings.ray_address == f"ray://{name}-head-svc.mlops.svc:{port}"
    assert head["rayStartParams"]["num-cpus"] == "0"  # the head trains nothing
    # Without it Ray Client's per-client server dies at birth (grpcio's fork handlers).
    head_env = {e["name"]: e.get("value") for e in head_container["env"]}
    assert head_env["GRPC_ENABLE_FORK_SUPPORT"] == "false"


def test_one_job_fits_on_one_worker() -> None:
    settings = settings_from("ml_service", literal_env(container(find("Deployment", "ml-service"))))
    for group in cluster()["spec"]["workerGroupSpecs"]:
        (worker,) = group["template"]["spec"]["containers"]
        cpus = float(group["rayStartParams"]["num-cpus"])
        memory_mb = mebibytes(worker["resources"]["limits"]["memory"])
        assert settings.ray_cpus <= cpus
        assert settings.ray_memory_mb <= memory_mb
        # A job's own request is refused above these; one no worker can hold would be
        # accepted and fail minutes later (the defaults were 8 CPUs and 64 GiB).
        assert settings.max_job_cpus <= cpus
        assert settings.max_job_memory_mb < memory_mb
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_ray_pods_reach_the_bucket_with_the_replicas_secret() -> None:
    def aws(c: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for e in c["env"] if e["name"].startswith("AWS_")]

    replica = aws(container(find("Deployment", "ml-service")))
    for template in templates().values():
        (each,) = template["spec"]["containers"]
        assert aws(each) == replica
