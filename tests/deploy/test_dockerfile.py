"""The Dockerfile and .dockerignore, read statically: no Docker engine runs here."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest

from tests.deploy.conftest import IMAGE, ROOT, owner, variables

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    """(KEYWORD, arguments) pairs, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(k.upper(), rest.strip()) for k, _, rest in (line.partition(" ") for line in lines)]


def stages() -> list[list[Instruction]]:
    """The instructions of each build stage, from its FROM on."""
    result: list[list[Instruction]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def exec_form(args: str) -> list[str]:
    """A JSON-array argument (exec form); fails on shell form."""
    value: Any = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def env_names(stage: list[Instruction]) -> set[str]:
    """Names set by the ENV instructions of a stage (KEY=value form)."""
    return {m for k, a in stage if k == "ENV" for m in re.findall(r"(\w+)=", a)}


def test_builds_in_stages_and_installs_uv_from_pypi() -> None:
    builder, final = stages()
    assert builder[0][1].endswith(" AS builder")
    installs = [a for k, a in builder if k == "RUN" and "pip install uv" in a]
    assert installs and all(re.search(r"uv==\d", a) for a in installs)  # pinned
    # The final stage copies only the built environment from the builder.
    copies = [a for k, a in final if k == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_no_image_or_download_is_fetched_by_url() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "://" not in text
    for keyword, args in instructions():
        if keyword == "COPY" and args.startswith("--from="):
            assert args.split()[0] == "--from=builder"
        assert keyword != "ADD"


def test_installs_from_the_lock() -> None:
    runs = " ".join(a for k, a in stages()[0] if k == "RUN")
    assert "--constraint requirements.lock" in runs
    assert "uv pip sync" in runs


def test_runs_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [a for k, a in final if k == "USER"]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_exec_form_entrypoint_and_command() -> None:
    final = dict(stages()[-1])
    assert exec_form(final["ENTRYPOINT"]) == ["/usr/bin/tini", "--"]
    assert exec_form(final["CMD"]) == ["python", "-m", "ml_service"]


def test_exposes_the_ports_compose_uses(compose: dict[str, Any]) -> None:
    exposed = {int(p) for k, a in instructions() if k == "EXPOSE" for p in a.split()}
    published = {
        int(str(p).rsplit(":", 1)[1])
        for service in compose["services"].values()
        if service["image"] == IMAGE
        for p in service.get("ports", [])
    }
    assert exposed == published


def test_every_mlops_variable_in_the_image_is_a_real_setting() -> None:
    names = {n for n in env_names(stages()[-1]) if n.startswith("MLOPS_")}
    assert names
    for name in names:
        assert name in variables(owner(name)), f"{name} is no setting of any part"


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves a path out (last matching pattern wins, ! re-includes)."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, glob) or fnmatch.fnmatch(p, glob.lstrip("*/")) for p in prefixes):
            result = not negate
    return result


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    """The patterns of .dockerignore."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_build_context_holds_what_copy_needs_and_nothing_private(
    ignore_patterns: list[str],
) -> None:
    for keyword, args in instructions():
        if keyword == "COPY" and not args.startswith("--from="):
            for source in args.split()[:-1]:
                assert not ignored(source.rstrip("/"), ignore_patterns), source
    for private in (".venv", "node_modules", "data", ".git", "tests", "ml_service/__pycache__"):
        assert ignored(private, ignore_patterns), private
