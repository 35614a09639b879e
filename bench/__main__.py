"""`python -m bench NAME [ARGS...]`: run one benchmark's `main(argv)`."""

from __future__ import annotations

import importlib
import sys

# Benchmark name -> module with a `main(argv: list[str]) -> None`.
BENCHMARKS = {
    "client": "bench.client",
    "gateway": "bench.gateway",
    "observability": "bench.observability",
    "predict_inprocess": "bench.predict_inprocess",
    "predict": "bench.predict",
    "scaled": "bench.scaled",
    "ray": "bench.ray_training",
    "upload": "bench.upload",
    "soak": "bench.soak",
    "tables": "bench.table_run",
    "v2": "bench.v2",
}


def main(argv: list[str]) -> None:
    """Dispatch to the named benchmark."""
    if not argv or argv[0] not in BENCHMARKS:
        names = ", ".join(sorted(BENCHMARKS))
        sys.exit(f"usage: python -m bench {{{names}}} [ARGS...]")
    importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
