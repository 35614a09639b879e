"""The contract: stubs match the protos, buf lints them, and reflection serves them."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ServiceThread

ROOT = Path(__file__).resolve().parents[1]
BUF = ROOT / "node_modules" / ".bin" / "buf"


def buf(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the pinned buf from node_modules (installed by bin/test)."""
    assert BUF.exists(), "buf is missing: run `npm install` (bin/test does)"
    return subprocess.run(
        [str(BUF), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_generated_stubs_match_the_protos(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)], check=True)
    fresh = tmp_path / "mlops" / "v1"
    committed = ROOT / "proto" / "mlops" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.suffix in {".py", ".pyi"})
    assert names, "protoc generated nothing"
    stale = [n for n in names if not filecmp.cmp(fresh / n, committed / n, shallow=False)]
    assert stale == [], f"stubs differ from protos; run `python proto/generate.py`: {stale}"


def test_buf_lint_is_clean() -> None:
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_curl_lists_services_and_checks_health(grpc_service: ServiceThread) -> None:
    url = f"http://{grpc_service.target}"
    common = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    listed = buf(*common, "--list-services", url)
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {
        "mlops.v1.ModelService",
        "mlops.v1.TrainingService",
        "grpc.health.v1.Health",
    } <= services

    for service in ("", "mlops.v1.readiness"):
        checked = buf(
            *common,
            "--data",
            json.dumps({"service": service}),
            f"{url}/grpc.health.v1.Health/Check",
        )
        assert checked.returncode == 0, checked.stderr
        assert json.loads(checked.stdout) == {"status": "SERVING"}

    kinds = buf(*common, f"{url}/mlops.v1.ModelService/ListModelKinds")
    assert kinds.returncode == 0, kinds.stderr
    names = {k["name"] for k in json.loads(kinds.stdout)["kinds"]}
    assert names == {"catboost", "logistic_regression"}
