"""Shared pieces of the command line: settings, exit codes, argument parsing, error text."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import typer

from mlops_client import errors
from mlops_client.cli_output import emit_json, err
from mlops_client.client import Client
from mlops_client.credentials import certificates, token_to_send
from mlops_client.csv_dialect import HEAD_BYTES, suffix_for
from mlops_client.files import columns_of

#: A data argument naming standard input.
STDIN = "-"

#: The largest version number the service's messages carry (uint32).
MAX_VERSION = 2**32 - 1


class Exit:
    """Exit codes scripts can test (also listed in `mlops --help`)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    INVALID = 4
    UNAVAILABLE = 5
    CONFLICT = 6
    UNAUTHENTICATED = 7
    JOB_FAILED = 8
    INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2
    TERMINATED = 143  # SIGTERM: 128 + 15, as a shell reports a command the signal ended


EXIT_HELP = (
    "Exit codes: 0 ok, 1 other error, 2 usage, 3 not found, 4 invalid input, "
    "5 service unavailable, busy (training queue full) or timed out, 6 conflict, "
    "7 unauthenticated, 8 job failed or cancelled, 130 interrupted (Ctrl-C), "
    "143 terminated (SIGTERM, handled as Ctrl-C)."
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so every command stops the way
    it does on Ctrl-C: `train` says how to follow or cancel the job (or cancels it with
    --cancel-on-interrupt), `predict` leaves -o as it was. Python's default for SIGTERM was
    to end the process at once without a word, the job training on."""


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated


def sigterm_as_ctrl_c() -> Callable[[], None]:
    """Handle SIGTERM as Ctrl-C from here on; return what puts the previous handler back.

    Only the main thread may set a handler: elsewhere (a command run in a thread) nothing
    changes.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def interrupted(exc: KeyboardInterrupt) -> int:
    """The exit code for a command stopped by Ctrl-C (130) or SIGTERM (143)."""
    return Exit.TERMINATED if isinstance(exc, Terminated) else Exit.INTERRUPTED


_CODES: list[tuple[type[Exception], int]] = [
    (errors.NotFound, Exit.NOT_FOUND),
    (errors.InvalidArgument, Exit.INVALID),
    (errors.ResourceExhausted, Exit.INVALID),
    (errors.Unavailable, Exit.UNAVAILABLE),
    (errors.DeadlineExceeded, Exit.UNAVAILABLE),
    (errors.Conflict, Exit.CONFLICT),
    (errors.Unauthenticated, Exit.UNAUTHENTICATED),
    (errors.JobError, Exit.JOB_FAILED),
    (OSError, Exit.INVALID),
    (ValueError, Exit.INVALID),
    (TypeError, Exit.INVALID),
]


# mallopt's parameter numbers, from glibc's malloc.h, with what the command sets them to.
_ALLOCATOR = (
    ("MALLOC_ARENA_MAX", -8, 2),
    ("MALLOC_TRIM_THRESHOLD_", -1, 256 << 20),
    ("MALLOC_TOP_PAD_", -2, 64 << 20),
    # Setting any of these fixes the threshold for mmap, else rising from 128 KiB as large
    # blocks are freed: fixed, every batch's buffers would be mapped and unmapped anew.
    ("MALLOC_MMAP_THRESHOLD_", -3, 256 << 20),
)


def tune_process() -> None:
    """Set the command's own process up for moving a file's batches; call once, at start.

    Done here, not in the client library: a notebook's process is its owner's to tune. Each
    batch's buffers (the file's piece, the request, the answer, its text) are megabytes, and
    glibc's malloc gave them back to the system as soon as they were freed, so every batch
    faulted fresh zeroed pages in (4M adult rows through logistic regression: 93-127k page
    faults and 0.60-0.74 system CPU-s; with freed memory kept for reuse 37-39k and 0.38-0.44,
    the command 2.60 s -> 2.41 s). Two arenas serve the two parse threads and keep the peak
    lower. Arrow's buffers go to the same malloc: its bundled mimalloc returned freed pages
    too, refaulted as zeroed huge pages (perf of a 2M-row predict: 4% of the command in
    mimalloc's page faults; client CPU 2.38 -> 2.09 s, median of 3). What the environment
    chose (MALLOC_*, ARROW_DEFAULT_MEMORY_POOL) stands.
    """
    # Objects made by the imports (most of those alive) are not garbage: the collector
    # need not go through them again as the command runs.
    gc.freeze()
    try:
        # The process's own symbols hold libc's; find_library would run ldconfig at each start.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS): its allocator's defaults
        return
    for variable, parameter, value in _ALLOCATOR:
        if variable not in os.environ:
            mallopt(parameter, value)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())


@dataclass
class Settings:
    """What every command needs: where the service is, how to reach it, how to print."""

    target: str
    token: str | None
    tls: bool | str
    json: bool

    def client(self) -> Client:
        """Open a client of the configured service."""
        return Client(self.target, self.token, self.tls)


# Targets gRPC reads by a scheme of its own (dns:///host:port, unix:/path), passed on as given.
_GRPC_SCHEME = re.compile(r"^(dns|unix|unix-abstract|ipv4|ipv6|vsock|xds):")
_HOST_PORT = re.compile(r"^(\[[^\]]+\]|[^:\[\]/]+)(?::(\d*))?$")


def service_address(target: str, tls: bool) -> str:
    """Check --server (or MLOPS_TARGET) is a host:port gRPC reaches as the user means it.

    gRPC took port 99999 as 99999 mod 65536 and tried 34463; a host without a port as port
    443; "http://host:port" as a host name to look up: each failed as a service it "cannot
    reach", not as the address being wrong.
    """
    if _GRPC_SCHEME.match(target):
        return target
    if "://" in target:
        raise typer.BadParameter(
            f"{target!r}: give host:port, without {target.split('://')[0]}://",
            param_hint="--server / MLOPS_TARGET",
        )
    found = _HOST_PORT.match(target)
    if found is None:
        raise typer.BadParameter(
            f"{target!r} is not host:port", param_hint="--server / MLOPS_TARGET"
        )
    port = found[2]
    if port is None and not tls:  # gRPC's default port, 443, is TLS's
        raise typer.BadParameter(
            f"{target!r} names no port: give host:port (the service's is 50051 unless "
            "MLOPS_PORT says otherwise)",
            param_hint="--server / MLOPS_TARGET",
        )
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise typer.BadParameter(
            f"{target!r}: the port must be from 1 to 65535", param_hint="--server / MLOPS_TARGET"
        )
    return target


def ca_roots(path: str | None) -> str | None:
    """Check --ca-file is a readable PEM bundle; gRPC would only fail to connect.

    A file that is not PEM made gRPC log four lines of its own ("Could not load any root
    certificate") and then "cannot reach the service"; a missing one was "[Errno 2] ...".
    """
    if path is None:
        return None
    try:
        certificates(path, "--ca-file")
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return path


def token_sent(token: str | None) -> str | None:
    """Check --token (or MLOPS_TOKEN) is one a header can carry, without the blanks around it."""
    if token is None:
        return None
    try:
        return token_to_send(token, "--token / MLOPS_TOKEN") or None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def quiet_stdout() -> None:
    """Point standard output at /dev/null once its reader has gone, so the exit flush is quiet."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextmanager
def reported() -> Iterator[None]:
    """Turn errors into a plain-words message on stderr and their exit code; no traceback."""
    try:
        yield
    except BrokenPipeError:
        # What reads the output stopped (`mlops show REF | head -1`): stop too, quietly, as
        # `predict -o -` does; an OSError would say "[Errno 32] Broken pipe" and exit 4.
        quiet_stdout()
        raise typer.Exit(Exit.OK) from None
    except (errors.MlopsError, OSError, ValueError, TypeError) as exc:
        code = next((c for cls, c in _CODES if isinstance(exc, cls)), Exit.ERROR)
        if isinstance(exc, errors.ResourceExhausted) and exc.retry_after is not None:
            code = Exit.UNAVAILABLE  # the training queue is full: not the input, try again
        message = exc.message if isinstance(exc, errors.ServiceError) else str(exc)
        if isinstance(exc, errors.Unauthenticated):
            message += " (give it with --token or MLOPS_TOKEN)"
        err.print(f"error: {message}", markup=False)
        for violation in getattr(exc, "violations", ()):
            if str(violation) not in message:
                err.print(f"  {violation.field}: {violation.description}", markup=False)
        raise typer.Exit(code) from None
    except KeyboardInterrupt as exc:
        # typer's own handling exits 130 without a word.
        err.print("interrupted", markup=False)
        raise typer.Exit(interrupted(exc)) from None


@contextmanager
def rows_file(data: Path) -> Iterator[Path]:
    """`data` as a file the readers can take; errors name where the rows came from.

    The readers take files (a CSV is cut into pieces at offsets found ahead, a Parquet file
    is read from its footer), so rows from a pipe, `-` for standard input or a named one
    such as a shell's `<(zcat rows.csv.gz)`, are copied into a temporary file first (under
    TMPDIR), named for what its first bytes show: CSV, compressed CSV or Parquet.
    """
    if str(data) == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            raise ValueError("- reads rows from standard input, but nothing is piped into it")
        with _spooled(sys.stdin.buffer, "standard input") as path:
            yield path
    elif data.is_fifo():
        with data.open("rb") as stream, _spooled(stream, str(data)) as path:
            yield path
    else:
        yield data


@contextmanager
def _spooled(stream: BinaryIO, name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlops-") as folder:
        head = stream.read(HEAD_BYTES)
        path = Path(folder) / f"stdin{suffix_for(head)}"
        with path.open("wb") as file:
            file.write(head)
            shutil.copyfileobj(stream, file, 1024 * 1024)
        try:
            yield path
        except ValueError as error:
            raise ValueError(str(error).replace(str(path), name)) from None


def model_ref(text: str) -> tuple[str, int | None]:
    """Split MODEL[:VERSION]."""
    model, _, version = text.partition(":")
    if version and not version.isdigit():
        raise typer.BadParameter(f"version must be a whole number (0: latest), not {version!r}")
    if version and int(version) > MAX_VERSION:
        # Else protobuf's "Value out of range: 4294967296", exit 4, as if the service refused it.
        raise typer.BadParameter(f"version {version} is beyond any (at most {MAX_VERSION})")
    return model, int(version) if version else None


def feature_columns(data: Path, target: str, chosen: list[str], ignored: list[str]) -> list[str]:
    """The columns `--feature` names, or every one but the target, less those `--ignore` names.

    Empty means every column but the target, left to the service.
    """
    if not ignored:
        return chosen
    header = columns_of(data)
    if header and header[-1] == "":
        # A separator ending every line (Excel on Windows): no column of the user's, which the
        # service leaves out by default but would read if named here.
        header = header[:-1]
    columns = chosen or [name for name in header if name != target]
    absent = [name for name in ignored if name not in columns]
    if absent:
        raise ValueError(f"--ignore {absent[0]!r}: no such column among {_listed(columns)}")
    return [name for name in columns if name not in ignored]


def _listed(names: list[str], shown: int = 8) -> str:
    return ", ".join(repr(n) for n in names[:shown]) + (", …" if len(names) > shown else "")


def train_hint(refused: errors.InvalidArgument) -> str:
    """The `mlops train` options that do what the refusal asks, if any: `--ignore` for the
    columns refused as features, `--allow-many-classes` for a target that looks continuous
    (the service's words name the request field, `allow_many_classes`)."""
    names = [
        found[1]
        for v in refused.violations
        if v.field == "feature_columns" and (found := _COLUMN.search(v.description))
    ]
    flags = [f"--ignore {shlex.quote(n)}" for n in dict.fromkeys(names)]
    if any("allow_many_classes" in v.description for v in refused.violations):
        flags.append("--allow-many-classes")
    return f" ({' '.join(flags)})" if flags else ""


_COLUMN = re.compile(r"^column '(.*?)' ")


def feature_types_of(categorical: list[str], numeric: list[str]) -> dict[str, str]:
    """`--categorical` and `--numeric` as the spec's feature types."""
    both = sorted(set(categorical) & set(numeric))
    if both:
        raise typer.BadParameter(f"column {both[0]!r} cannot be both categorical and numeric")
    return dict.fromkeys(categorical, "categorical") | dict.fromkeys(numeric, "numeric")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Parse -p NAME=VALUE options; values are JSON when they parse as JSON, else text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="-p")
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def show(settings: Settings, value: Any, plain: Callable[[], None]) -> None:
    """Print JSON when asked, else the plain rendering."""
    if settings.json:
        emit_json(value)
    else:
        plain()
