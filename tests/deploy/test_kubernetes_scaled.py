"""deploy/k8s/scaled: the overlay, rendered as kustomize would, valid and really shared mode."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.deploy.conftest import ROOT, load_all, settings_from
from tests.deploy.test_kubernetes import VERSIONS, container, env


def literal_env(c: dict[str, Any]) -> dict[str, str]:
    """A container's environment given as values (secret references left out)."""
    return env({"env": [e for e in c["env"] if "value" in e]})


BASE = ROOT / "deploy" / "k8s"
OVERLAY = BASE / "scaled"


def render() -> list[dict[str, Any]]:
    """Apply the overlay to the base: its resources, delete patches and JSON 6902 patches."""
    (kustomization,) = load_all(OVERLAY / "kustomization.yaml")
    objects: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        if entry == "../":
            (base,) = load_all(BASE / "kustomization.yaml")
            for name in base["resources"]:
                objects.extend(load_all(BASE / name))
        else:
            objects.extend(load_all(OVERLAY / entry))
    return apply_patches(objects, kustomization, OVERLAY)


def apply_patches(
    objects: list[dict[str, Any]], kustomization: dict[str, Any], directory: Path
) -> list[dict[str, Any]]:
    """Apply an overlay's patches, found in `directory`: delete patches and JSON 6902 ones."""
    for patch in kustomization["patches"]:
        (document,) = load_all(directory / patch["path"])
        if isinstance(document, dict) and document.get("$patch") == "delete":
            gone = (document["kind"], document["metadata"]["name"])
            objects = [o for o in objects if (o["kind"], o["metadata"]["name"]) != gone]
            continue
        target = patch["target"]
        (found,) = [
            i
            for i, o in enumerate(objects)
            if (o["kind"], o["metadata"]["name"]) == (target["kind"], target["name"])
        ]
        objects[found] = jsonpatch.apply_patch(copy.deepcopy(objects[found]), document)
    return objects


def find(kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in render() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_the_rendered_overlay_matches_the_kubernetes_schemas(version: str) -> None:
    for resource in render():
        kubernetes_validate.validate(resource, version, strict=True)


def test_three_replicas_with_no_volume_roll_without_downtime() -> None:
    assert not [r for r in render() if r["kind"] == "PersistentVolumeClaim"]
    spec = find("Deployment", "ml-service")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    mounts = {m["mountPath"] for m in container(find("Deployment", "ml-service"))["volumeMounts"]}
    settings = settings_from("ml_service", literal_env(container(find("Deployment", "ml-service"))))
    assert str(settings.data_dir).startswith("/tmp/") and mounts == {"/tmp"}


def test_credentials_come_from_a_secret_and_the_store_is_shared() -> None:
    c = container(find("Deployment", "ml-service"))
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e
    }
    assert from_secret == {
        "MLOPS_DATABASE_URL": "mlops-shared",
        "AWS_ACCESS_KEY_ID": "mlops-shared",
        "AWS_SECRET_ACCESS_KEY": "mlops-shared",
    }
    literal = literal_env(c)
    settings = settings_from(
        "ml_service", {**literal, "MLOPS_DATABASE_URL": "postgresql://u:p@db:5432/mlops"}
    )
    assert settings.shared and settings.artifact_uri.startswith("s3://")
    assert literal["AWS_ENDPOINT_URL"].startswith("http")


def test_the_gateway_balances_over_a_headless_service_of_the_replicas() -> None:
    headless = find("Service", "ml-service-headless")
    assert headless["spec"]["clusterIP"] == "None"
    pods = find("Deployment", "ml-service")["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pods.items()
    (port,) = headless["spec"]["ports"]
    gateway = container(find("Deployment", "rest-gateway"))
    target = settings_from("rest_gateway", env(gateway)).grpc_target
    assert target == f"dns:///ml-service-headless:{port['port']}"
