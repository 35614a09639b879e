"""`python -m ml_service`: run the gRPC model service until SIGINT or SIGTERM.

`python -m ml_service migrate` brings the metadata schema (MLOPS_DATABASE_URL, or SQLite in
MLOPS_DATA_DIR) up to this release's revision and exits; the service also does that on
start, so this is for operators who upgrade the schema as a step of its own.
"""

from __future__ import annotations

import os

# Before pyarrow loads: Arrow's C++ code that takes no pool (the Parquet writer of an
# upload, IPC readers) allocates from the process's default, for pyarrow its bundled
# mimalloc, which asks for huge pages: 18 MB stayed resident after one upload, each 2 MB
# page held for a few bytes. The system allocator is trimmed when idle (ml_service.memory).
# An operator's own choice stands.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import argparse
import asyncio
import gc
import signal
import sys
from pathlib import Path

import sqlalchemy as sa
from mlops.setting_rules import settings_problems
from pydantic import ValidationError

from ml_service import logs, memory, telemetry
from ml_service.config import Settings
from ml_service.store.database import SchemaTooNew, create_engine, current_revision, sqlite_url
from ml_service.store.database import upgrade as upgrade_schema
from ml_service.store.errors import StoreInUse, StoreRefused
from ml_service.store.opening import lock_data_dir, make_data_dir


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Merge command-line flags over MLOPS_* environment variables; exit naming a bad one."""
    parser = argparse.ArgumentParser(prog="python -m ml_service", description=__doc__)
    parser.add_argument("--host", help="bind address (MLOPS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gRPC port (MLOPS_PORT, default 50051)")
    parser.add_argument("--data-dir", type=Path, help="store (MLOPS_DATA_DIR, default data)")
    parser.add_argument("--database-url", help="metadata database (MLOPS_DATABASE_URL)")
    parser.add_argument("--artifact-uri", help="artifacts and datasets (MLOPS_ARTIFACT_URI)")
    parser.add_argument(
        "--max-concurrent-trainings",
        type=int,
        help="trainings at once (MLOPS_MAX_CONCURRENT_TRAININGS, default 1)",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING... (MLOPS_LOG_LEVEL)")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        sys.exit(f"ml_service: {settings_problems(exc, 'MLOPS_', given)}")


async def run(settings: Settings) -> None:
    """Serve until a stop signal, then stop gracefully."""
    # Here, not at the top: `migrate` needs neither gRPC nor the core's imports.
    from ml_service.core import ModelServiceCore
    from ml_service.grpc.server import Server

    server = Server(settings, ModelServiceCore(settings, telemetry.from_env()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except BaseException:
        # The port is already served when the store refuses to open; release it cleanly.
        await server.stop(0)
        raise
    print(f"ml_service listening on {settings.host}:{server.port}", file=sys.stderr, flush=True)
    if server.metrics is not None:
        print(f"metrics on http://{settings.host}:{server.metrics.port}/metrics", file=sys.stderr)
    await server.preloaded()
    # What is alive now (libraries, store, server) lives as long as the process; frozen, the
    # collector's full passes skip it: ~1 ms instead of ~0.4 s with scikit-learn, CatBoost and
    # pandas loaded. Spans queued for export trigger such a pass every few thousand traced
    # calls, and each stalled every call in flight. (A collection here found nothing to free.)
    gc.freeze()
    stopped = asyncio.ensure_future(stop.wait())
    gave_up = asyncio.ensure_future(server.gave_up.wait())
    await asyncio.wait({stopped, gave_up}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    gave_up.cancel()
    await server.stop()
    server.core.telemetry.shutdown()
    if server.cannot_open is not None:
        raise server.cannot_open


def migrate(settings: Settings) -> str:
    """Upgrade the configured metadata database to the head revision; say what changed."""
    url = settings.database_url
    lock_fd: int | None = None
    if not url:
        root = settings.data_dir.resolve()
        make_data_dir(root)
        # A service still running on the directory, of whatever release, would go on writing
        # rows in the schema it opened; a release from before Alembic does not even look.
        lock_fd = lock_data_dir(root, "stop the service using it, then migrate")
        url = sqlite_url(root / "metadata.sqlite")
    try:
        engine = create_engine(url)
        try:
            before = current_revision(engine)
            # No revision: a new database, or one a release from before revisions made.
            made_before = before is None and bool(sa.inspect(engine).get_table_names())
            after = upgrade_schema(engine)
        finally:
            engine.dispose()
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    if before == after:
        return f"metadata schema already at revision {after}"
    if made_before:
        return f"metadata schema of a release from before revisions upgraded to revision {after}"
    if before is None:
        return f"metadata schema created at revision {after}"
    return f"metadata schema upgraded from revision {before} to {after}"


def main(argv: list[str] | None = None) -> None:
    """Parse settings, configure logging and serve (or migrate, and exit)."""
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv[:1] == ["migrate"] else "serve"
    settings = parse_settings(argv[1:] if command == "migrate" else argv)
    logs.configure(settings.log_level, settings.log_json)
    try:
        if command == "migrate":
            print(f"ml_service: {migrate(settings)}", file=sys.stderr)
        else:
            memory.configure()  # before any thread allocates
            asyncio.run(run(settings))
    except (OSError, SchemaTooNew) as exc:
        sys.exit(f"ml_service: {exc}")
    except (StoreInUse, StoreRefused) as exc:
        # A second replica started on the first one's data directory, or a database or bucket
        # refuses the settings (no such database, a wrong password): a setting to change, not
        # a crash to report.
        sys.exit(f"ml_service: {exc.message}")


if __name__ == "__main__":
    main()
