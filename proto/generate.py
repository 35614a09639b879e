"""Regenerate the Python stubs beside the protos: `python proto/generate.py [OUT_DIR]`."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent


def generate(out_dir: Path) -> None:
    """Compile every proto under proto/mlops into `out_dir` (messages, services, type stubs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = str(resources.files("grpc_tools") / "_proto")
    files = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "mlops").rglob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generate_inference(out_dir)


def generate_inference(out_dir: Path) -> None:
    """Compile the V2 protocol to a descriptor set; `inference` loads it into its own pool."""
    (out_dir / "inference").mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--descriptor_set_out={out_dir / 'inference' / 'grpc_predict_v2.binpb'}",
        "inference/grpc_predict_v2.proto",
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
