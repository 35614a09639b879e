"""What metrics and tracing cost: single-row Predict p50 and p99, stream throughput, on vs off.

`python -m bench observability [--quick]` starts two `python -m ml_service` processes side by
side: "off" as deployed by default (no metrics port, no OTLP endpoint) and "on" with
MLOPS_METRICS_PORT set and OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local sink that accepts
every export, so every call is traced and exported (or a share of them: --trace-ratio; or
none, metrics only: --metrics-only). Both get the same model kind trained on adult.csv.
Single-row calls go to the two in turn, one each, and the streams alternate which goes
first, so a busy machine slows both alike.

Each repeat gives an on/off ratio of its own (p50, p99, stream rows/s), and the verdict is
the median of those ratios: the machine's load swings between repeats, rarely within one.
The repeats are spread over several pairs of processes (--pairs), each pair started afresh.
Latency on two shared cores moves by several percent from run to run, so each side's server
CPU per single-row call (user + system time of the whole process, all its threads, from
/proc over the calls; and of its main thread alone, which runs the event loop, where spans
are made) is printed too: the cost telemetry adds, in microseconds, is the steadier figure.
Prints a table; the last line is one JSON object with medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.server
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pyarrow as pa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from bench.harness import cpu_seconds, free_port, percentiles, process, wait_until
from bench.predict import TARGET, load_adult, repeat_table, stream, train
from ml_service.grpc import errors
from ml_service.telemetry import Telemetry, use_case
from mlops_client.ipc import to_ipc


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts and drops every export."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def otlp_sink() -> Iterator[int]:
    """Serve the sink on a free port for the block; yield the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def process_and_loop_cpu(pid: int) -> tuple[float, float]:
    """User + system CPU so far of a process (all its threads) and of its main thread."""
    # The main thread runs the event loop: every call's Python work, spans included.
    return cpu_seconds(pid), cpu_seconds(pid, thread=pid)


@dataclass
class Side:
    """One running service: its channel and process id."""

    channel: grpc.Channel
    pid: int


@contextmanager
def service(tmp: Path, name: str, env: dict[str, str]) -> Iterator[Side]:
    """Run one service with `env` added; yield it once it is ready."""
    port = free_port()
    command = ["-m", "ml_service", "--port", str(port), "--data-dir", str(tmp / name)]
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with process(command, tmp / f"{name}.log") as proc:
            os.environ.clear()
            os.environ.update(saved)
            options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                ready = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
                wait_until(lambda: health.Check(ready, timeout=1).status == 1, name, 120)
                yield Side(channel, proc.pid)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def paired_single_row(
    sides: dict[str, Side],
    models: dict[str, str],
    rows: pa.Table,
    calls: int,
) -> dict[str, dict[str, float]]:
    """p50/p99 and server CPU µs of one-row Predicts per side, called alternately.

    The machine's load swings within seconds; taking turns every call (rather than every
    few thousand) puts both sides under the same swings.
    """
    stubs = {name: ps_grpc.PredictionServiceStub(side.channel) for name, side in sides.items()}
    payloads = [to_ipc(rows.slice(i % 1000, 1)) for i in range(calls)]
    requests = {
        name: [ps.PredictRequest(model_id=models[name], arrow_ipc=p) for p in payloads]
        for name in stubs
    }
    for name, stub in stubs.items():
        for request in requests[name][:100]:
            stub.Predict(request, timeout=10)
    samples: dict[str, list[int]] = {name: [] for name in stubs}
    order = list(stubs)
    cpu = {name: process_and_loop_cpu(side.pid) for name, side in sides.items()}
    for i in range(calls):
        for name in order if i % 2 == 0 else reversed(order):
            started = time.perf_counter_ns()
            stubs[name].Predict(requests[name][i], timeout=10)
            samples[name].append(time.perf_counter_ns() - started)
    figures = {name: percentiles(taken) for name, taken in samples.items()}
    for name, side in sides.items():
        (process_before, loop_before), (process_after, loop_after) = (
            cpu[name],
            process_and_loop_cpu(side.pid),
        )
        figures[name]["cpu_us"] = (process_after - process_before) / calls * 1e6
        figures[name]["loop_cpu_us"] = (loop_after - loop_before) / calls * 1e6
    return figures


FIGURES = ("p50_ms", "p99_ms", "cpu_us", "loop_cpu_us", "rows_per_s")


def measure_pair(
    args: argparse.Namespace,
    sides: dict[str, Side],
    table: pa.Table,
    features: pa.Table,
    rows: pa.Table,
    runs: dict[str, dict[str, list[float]]],
) -> None:
    """Train on both sides of one pair, then measure them `args.repeats` times into `runs`."""
    models = {n: train(side.channel, table, args.kind).model_id for n, side in sides.items()}
    stubs = {name: ps_grpc.PredictionServiceStub(side.channel) for name, side in sides.items()}
    for repeat in range(args.repeats):
        for name, figures in paired_single_row(sides, models, features, args.calls).items():
            for figure in ("p50_ms", "p99_ms", "cpu_us", "loop_cpu_us"):
                runs[figure][name].append(figures[figure])
        # Each goes first in turn: with a fixed order the second streamed faster.
        for name in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
            started = time.perf_counter()
            stream(stubs[name], models[name], rows)
            runs["rows_per_s"][name].append(rows.num_rows / (time.perf_counter() - started))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the two services through every measurement; return medians and ratios."""
    table, _ = load_adult()
    features = table.drop_columns([TARGET])
    rows = repeat_table(features, args.rows)
    metrics_port = free_port()
    runs: dict[str, dict[str, list[float]]] = {figure: {"off": [], "on": []} for figure in FIGURES}
    with tempfile.TemporaryDirectory() as tmp, otlp_sink() as sink:
        on_env = {"MLOPS_METRICS_PORT": str(metrics_port)}
        if not args.metrics_only:
            on_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink}"
        if args.trace_ratio < 1:
            # The SDK's standard sampler variables: trace a share of the calls, as in production.
            on_env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
            on_env["OTEL_TRACES_SAMPLER_ARG"] = str(args.trace_ratio)
        for pair in range(args.pairs):
            # Each pair of processes is started afresh, the two in turn first: one process
            # runs a percent or two faster than its twin for the whole of its life (its hash
            # seed, where its memory lies), which more repeats within it do not average out.
            order = [("off", {}), ("on", on_env)]
            (Path(tmp) / str(pair)).mkdir()
            with ExitStack() as stack:
                sides = {
                    name: stack.enter_context(service(Path(tmp) / str(pair), name, env))
                    for name, env in (order if pair % 2 == 0 else order[::-1])
                }
                measure_pair(args, sides, table, features, rows, runs)
                if "MLOPS_METRICS_PORT" in on_env:
                    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
                    if "mlops_predicted_rows_total" not in scraped:
                        raise SystemExit("bench: the 'on' service served no prediction metrics")
    results: dict[str, Any] = {
        "benchmark": "observability",
        "kind": args.kind,
        "pairs": args.pairs,
        "repeats": args.repeats,
        "trace_ratio": None if args.metrics_only else args.trace_ratio,
        "single_row_calls": args.calls,
        "stream_rows": args.rows,
        "load_average": os.getloadavg()[0],
    }
    for figure, sides_runs in runs.items():
        off, on = sides_runs["off"], sides_runs["on"]
        ratios = [o / f for o, f in zip(on, off, strict=True)]
        results[figure] = {
            "off": statistics.median(off),
            "on": statistics.median(on),
            # The verdict: each repeat's own ratio, then their median.
            "on_over_off": statistics.median(ratios),
            "ratios": [round(r, 4) for r in ratios],
            "runs": sides_runs,
        }
    for figure in ("cpu_us", "loop_cpu_us"):
        cpu = runs[figure]
        added = [o - f for o, f in zip(cpu["on"], cpu["off"], strict=True)]
        results[figure]["added_us"] = statistics.median(added)
    return results


def main(argv: list[str]) -> None:
    """Parse the options, measure, print a table and the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench observability", description=__doc__)
    parser.add_argument("--kind", default="logistic_regression", help="model kind to serve")
    parser.add_argument("--quick", action="store_true", help="fewer calls, rows and repeats")
    parser.add_argument("--calls", type=int, default=3000, help="single-row calls per repeat")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows streamed per repeat")
    parser.add_argument("--pairs", type=int, default=4, help="fresh on/off process pairs")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per pair")
    parser.add_argument(
        "--trace-ratio", type=float, default=1.0, help="share of calls traced by 'on' (1 = all)"
    )
    parser.add_argument(
        "--metrics-only", action="store_true", help="'on' serves metrics but does not trace"
    )
    parser.add_argument(
        "--spans-only",
        action="store_true",
        help="only the in-process CPU of the per-RPC wrapper and a Predict's spans",
    )
    args = parser.parse_args(argv)
    if args.spans_only:
        figures = span_cost()
        print("CPU µs per call, wrapper and spans around a handler doing nothing (medians):")
        print("  " + ", ".join(f"{name} {us:.1f}" for name, us in figures.items()))
        print(json.dumps({"benchmark": "observability-spans", "cpu_us": figures}))
        return
    if args.quick:
        args.calls, args.rows, args.pairs, args.repeats = 1000, 200_000, 1, 3
    results = measure(args)
    print(f"{'':34}{'off':>12}{'on':>12}{'on/off':>9}  (median of per-repeat ratios)")
    for label, figure, form in (
        ("single-row Predict p50 ms", "p50_ms", "12.3f"),
        ("single-row Predict p99 ms", "p99_ms", "12.3f"),
        ("server CPU µs per single-row call", "cpu_us", "12.1f"),
        ("  of which its event loop's thread", "loop_cpu_us", "12.1f"),
        ("StreamPredict rows/s", "rows_per_s", "12,.0f"),
    ):
        figures = results[figure]
        off, on, ratio = figures["off"], figures["on"], figures["on_over_off"]
        print(f"{label:34}{off:{form}}{on:{form}}{ratio:9.3f}")
    added, on_loop = results["cpu_us"]["added_us"], results["loop_cpu_us"]["added_us"]
    print(
        f"telemetry adds {added:.0f} µs of server CPU per call, {on_loop:.0f} on the loop (medians)"
    )
    print(json.dumps(results))


class _Dropping:
    """A span exporter that drops every batch: the in-process figure is the loop's work."""

    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _Core:
    """A core with one use case that predicts nothing, in the spans a Predict gets."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    @use_case
    async def predict(self, rows: int) -> int:
        span = self.telemetry.child_span("model.predict")
        if span is None:
            return rows
        with span:  # not made current, as the predictor's
            span.set_attribute("mlops.rows", rows)
            return rows


class _Servicer:
    """A servicer whose Predict goes through the real per-RPC wrapper to `_Core`."""

    SERVICE_NAME = "mlops.v1.PredictionService"

    def __init__(self, core: _Core) -> None:
        self._core = core

    @errors.unary
    async def Predict(self, request: int, context: Any) -> int:
        return await self._core.predict(request)


class _Context:
    """The two calls the wrapper makes on a gRPC servicer context."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: object) -> None:
        pass


def span_cost(calls: int = 5000, repeats: int = 7) -> dict[str, float]:
    """CPU µs per call of the wrapper and a Predict's spans around a handler doing nothing."""
    samplers = {"dropped": sampling.ALWAYS_OFF, "traced": sampling.ALWAYS_ON}
    servicers = {"untraced": _Servicer(_Core(Telemetry()))}
    for name, sampler in samplers.items():
        provider = TracerProvider(sampler=sampling.ParentBased(sampler))
        # Dropped as they come, on this thread: a batch processor's export thread would get
        # the GIL only once a switch interval from this loop, which never waits on a socket,
        # so its queue would fill and the spans it held would be the collector's work.
        provider.add_span_processor(SimpleSpanProcessor(_Dropping()))  # type: ignore[arg-type]
        servicers[name] = _Servicer(_Core(Telemetry(tracer_provider=provider)))
    # The one log line per call is the same with and without tracing; leave it out.
    logging.getLogger("ml_service.rpc").setLevel(logging.WARNING)
    # As the service does once its libraries are loaded (ml_service.__main__): otherwise the
    # collections that spans trigger pass over every object alive, and the figure doubles.
    gc.freeze()
    taken: dict[str, list[float]] = {name: [] for name in servicers}
    context = _Context()

    async def run(servicer: _Servicer, n: int) -> None:
        for _ in range(n):
            await servicer.Predict(1, context)
            # One turn of the loop after each call, as the service's loop turns between
            # calls: the tracer hands a call's spans to the processors in that turn.
            await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    for _ in range(repeats):
        for name, servicer in servicers.items():
            loop.run_until_complete(run(servicer, calls // 10))
            started = time.thread_time()
            loop.run_until_complete(run(servicer, calls))
            taken[name].append((time.thread_time() - started) / calls * 1e6)
    loop.close()
    return {name: statistics.median(figures) for name, figures in taken.items()}
