"""The generated-table matrix on new seeds for N minutes: finds the next kind of bad table.

`python -m bench tables [--minutes 10] [--seed S] [--kinds catboost,logistic_regression]`
starts a real service in this process (its own event loop, port 0), tries tables S, S+1, ...
(bench.tables) with each kind until the time is up, and prints a summary: tables tried,
per-kind outcomes, and every failure with its seed and table. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc

from bench.table_check import KINDS, Outcome, TableChecker
from bench.tables import generate
from ml_service.config import Settings
from ml_service.grpc.server import Server, start_server


@contextlib.contextmanager
def service(data_dir: Path) -> Iterator[tuple[str, int]]:
    """Run the service on a free port in a background loop; yield its target and job threads."""
    settings = Settings.model_validate(
        {
            "host": "127.0.0.1",
            "port": 0,
            "data_dir": data_dir,
            "max_concurrent_trainings": 2,
            "log_json": False,
        }
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server: Server = asyncio.run_coroutine_threadsafe(start_server(settings), loop).result(60)
    try:
        # The thread count the service gives each job (training_use_cases._start_job), so the
        # reference matches.
        threads = max(1, (os.cpu_count() or 1) // settings.max_concurrent_trainings)
        yield f"127.0.0.1:{server.port}", threads
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(1.0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def summary(tried: int, seed: int, outcomes: list[Outcome]) -> str:
    """Say what was tried and how it went, failures first in full."""
    failures = [o for o in outcomes if o.status == "failed"]
    lines = [f"tables tried: {tried} (seeds {seed}..{seed + tried - 1})"]
    for kind in sorted({o.kind for o in outcomes}):
        counts = Counter(o.status for o in outcomes if o.kind == kind)
        fields = Counter(f for o in outcomes if o.kind == kind for f in o.fields)
        lines.append(
            f"  {kind}: trained {counts['trained']}, refused {counts['refused']} "
            f"(fields {dict(fields)}), failed {counts['failed']}"
        )
    lines.append(f"failures: {len(failures)}")
    for outcome in failures:
        lines += [f"  {generate(outcome.seed).describe()}", f"    {outcome}"]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Run the matrix for the given minutes and print the summary."""
    parser = argparse.ArgumentParser(prog="python -m bench tables", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: clock)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    seed = time.time_ns() % 10**9 if args.seed is None else args.seed
    kinds = args.kinds.split(",")
    # The service logs each INTERNAL with its traceback; the summary says what matters.
    logging.basicConfig(level=logging.CRITICAL)
    outcomes: list[Outcome] = []
    tried = 0
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        target, threads = stack.enter_context(service(Path(tmp)))
        checker = TableChecker(stack.enter_context(grpc.insecure_channel(target)), threads)
        until = time.monotonic() + args.minutes * 60
        while time.monotonic() < until:
            case = generate(seed + tried)
            for kind in kinds:
                outcomes.append(checker.check(case, kind))
                if outcomes[-1].status == "failed":
                    print(f"FAILED {case.describe()}\n  {outcomes[-1]}", flush=True)
            tried += 1
    print(summary(tried, seed, outcomes))
    if any(o.status == "failed" for o in outcomes):
        sys.exit(1)
