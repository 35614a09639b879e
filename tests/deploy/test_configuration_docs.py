"""The README's configuration tables and the manifests' variables, against what the code reads."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from tests.deploy.conftest import ROOT, SETTINGS, load_all, prefix, variables
from tests.deploy.test_compose import environment
from tests.deploy.test_kubernetes import resources
from tests.deploy.test_kubernetes_ray import render as render_ray
from tests.deploy.test_kubernetes_scaled import render as render_scaled

# Set in the manifests for a library, not for our settings classes.
READ_BY_LIBRARIES = {
    "AWS_ENDPOINT_URL": "ml_service.store.files (and Arrow's S3 client in Ray actors)",
    "AWS_REGION": "ml_service.store.files",
    "AWS_ACCESS_KEY_ID": "Arrow's S3 client (the AWS SDK's credential chain)",
    "AWS_SECRET_ACCESS_KEY": "Arrow's S3 client (the AWS SDK's credential chain)",
    "GRPC_ENABLE_FORK_SUPPORT": "grpcio, on the Ray head (README: Training on a Ray cluster)",
}
OUR_IMAGES = ("mlops-service:0.1.0", "mlops-service-ray:0.1.0")


def documented() -> dict[str, dict[str, str]]:
    """Each part's README table: variable -> default as written."""
    text = (ROOT / "README.md").read_text()
    tables: dict[str, dict[str, str]] = {}
    for module in SETTINGS:
        heading = re.search(rf"^#### .*`python -m {module}`$", text, re.M)
        assert heading, f"the README has no configuration table for {module}"
        body = text[heading.end() :].split("\n#", 1)[0]
        rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]*) \|", body, re.M)
        tables[module] = {name: default.strip() for name, default in rows}
    return tables


def as_written(value: Any) -> str:
    """A default as the README writes it."""
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if value in ("", None):
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) or not isinstance(value, int):
        return f"`{value}`"
    return str(value)


@pytest.mark.parametrize("module", sorted(SETTINGS))
def test_each_readme_table_lists_every_setting_with_the_codes_default(module: str) -> None:
    cls: type[BaseSettings] = SETTINGS[module]
    table = {k: v for k, v in documented()[module].items() if k.startswith(prefix(cls))}
    assert set(table) == variables(cls), "README and settings differ"
    for name, field in cls.model_fields.items():
        written = table[prefix(cls) + name.upper()]
        assert written.split(" (")[0] == as_written(field.default).split(" (")[0], name


def containers() -> dict[str, dict[str, Any]]:
    """Every container of our images in compose (any profile) and the Kubernetes overlays,
    with the variables it is given (a secret reference counts as set)."""
    found: dict[str, dict[str, Any]] = {}
    (compose,) = load_all(ROOT / "compose.yaml")
    for name, service in compose["services"].items():
        if service.get("image") in OUR_IMAGES:
            found[f"compose {name}"] = environment(service)
    for overlay, objects in (("base", resources()), ("scaled", render_scaled()),
                             ("ray", render_ray())):  # fmt: skip
        for o in objects:
            pods = [o["spec"]["template"]] if o["kind"] == "Deployment" else []
            if o["kind"] == "RayCluster":
                spec = o["spec"]
                pods = [spec["headGroupSpec"]["template"]]
                pods += [g["template"] for g in spec["workerGroupSpecs"]]
            for pod in pods:
                for c in pod["spec"]["containers"]:
                    key = f"{overlay} {o['metadata']['name']}/{c['name']}"
                    found[key] = {e["name"]: e.get("value") for e in c.get("env", [])}
    return found


def test_every_variable_a_manifest_sets_is_read_by_the_code() -> None:
    known = set().union(*(variables(cls) for cls in SETTINGS.values()))
    for where, env in containers().items():
        for name in env:
            assert name in known or name in READ_BY_LIBRARIES, f"{where}: nothing reads {name}"
