"""Prediction throughput and latency against the in-process baseline, in one run.

`python -m bench predict [--quick]` starts `python -m ml_service` on a loopback port, trains
CatBoost and logistic regression on adult.csv, and measures for each kind:

(a) the baseline a user would write: the library model's `predict_proba(pandas DataFrame)`
    in this process, on the same rows;
(b) StreamPredict over loopback: N rows in 64k-row batches (1,000,000 by default);
(c) unary single-row Predict latency, p50/p99 over 2,000 calls;
(d) the server's peak RSS growth while streaming 10,000,000 rows.

Every figure is the median of repeats. It prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import catboost
import grpc
import pandas as pd
import pyarrow as pa
import skops.io
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb

from bench.harness import DATA_DIR, RssSampler, free_port, percentiles, process, wait_until
from ml_service.kinds.sklearn_pipeline import TRUSTED_TYPES
from ml_service.model_input import internal_names
from mlops_client.ipc import table_chunks, to_ipc

BATCH_ROWS = 64 * 1024
TARGET = "income"
KINDS = {"logistic_regression": {}, "catboost": {"iterations": 300}}
GOALS = {"logistic_regression": 1.5, "catboost": 1.0}


def load_adult() -> tuple[pa.Table, pd.DataFrame]:
    """The training table as Arrow, and the same CSV as a user reads it with pandas."""
    import pyarrow.csv as pacsv

    path = DATA_DIR / "adult.csv"
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    return pacsv.read_csv(path, convert_options=options), pd.read_csv(path)


def repeat_table(table: pa.Table, rows: int) -> pa.Table:
    """Repeat a table's rows up to `rows`, as one contiguous table."""
    copies = -(-rows // table.num_rows)
    return pa.concat_tables([table] * copies).slice(0, rows).combine_chunks()


def train(channel: grpc.Channel, table: pa.Table, kind: str) -> pb.ModelVersion:
    """Train one model over gRPC and return its version."""
    params = struct_pb2.Struct()
    params.update(KINDS[kind])
    spec = pb.TrainingJobSpec(kind=kind, target_column=TARGET, hyperparameters=params)

    def messages() -> Iterator[ts.CreateTrainingJobRequest]:
        yield ts.CreateTrainingJobRequest(spec=spec)
        for piece in table_chunks(table):
            yield ts.CreateTrainingJobRequest(arrow_chunk=piece)

    training = ts_grpc.TrainingServiceStub(channel)
    job = training.CreateTrainingJob(messages(), timeout=120).job
    watch = ts.WatchTrainingJobRequest(job_id=job.job_id)
    final = list(training.WatchTrainingJob(watch, timeout=600))[-1].job
    if final.state != pb.JOB_STATE_SUCCEEDED:
        sys.exit(f"bench: training {kind} failed: {final.error.message}")
    return final.result


def baseline_model(data_dir: Path, version: pb.ModelVersion, kind: str) -> Any:
    """Load the stored artifact the way a user would in their own process."""
    path = next((data_dir / "artifacts" / version.model_id).iterdir())
    if kind == "catboost":
        model = catboost.CatBoostClassifier()
        model.load_model(str(path))
        return model
    return skops.io.load(str(path), trusted=TRUSTED_TYPES)


def baseline_frame(frame: pd.DataFrame, version: pb.ModelVersion, kind: str) -> pd.DataFrame:
    """The feature DataFrame as the user prepares it for the library."""
    names = [f.name for f in version.signature.features]
    out = frame[names].copy()
    categorical = [f.name for f in version.signature.features if f.feature_type == 2]
    for name in categorical:
        out[name] = out[name].astype(object)
        if kind == "catboost":
            out[name] = out[name].fillna("__missing__")
    # The libraries were fitted on the names kinds see (f0..fn), not the user's.
    out.columns = internal_names(len(out.columns))
    return out


def median_seconds(fn: Any, repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def stream(stub: ps_grpc.PredictionServiceStub, model_id: str, rows: pa.Table) -> int:
    """StreamPredict the rows in 64k-row batches; return the rows received back."""
    batches = rows.to_batches(max_chunksize=BATCH_ROWS)

    def requests() -> Iterator[ps.StreamPredictRequest]:
        for i, batch in enumerate(batches):
            yield ps.StreamPredictRequest(
                model_id=model_id if i == 0 else "", arrow_ipc=to_ipc(batch)
            )

    received = 0
    for answer in stub.StreamPredict(requests(), timeout=3600):
        received += pa.ipc.open_stream(answer.arrow_ipc).read_all().num_rows
    if received != rows.num_rows:
        sys.exit(f"bench: streamed {rows.num_rows} rows but got {received} back")
    return received


def stream_rows(
    stub: ps_grpc.PredictionServiceStub, model_id: str, template: pa.Table, total: int
) -> None:
    """Stream `total` rows in 64k-row batches cycling the template, without holding them all."""
    # One contiguous 64k-row batch whatever the template's chunks: the first chunk of a CSV
    # read (adult.csv's are ~9.7k rows) would stream small batches instead.
    batch = repeat_table(template, BATCH_ROWS).to_batches()[0]
    message = to_ipc(batch)

    def requests() -> Iterator[ps.StreamPredictRequest]:
        for i in range(-(-total // batch.num_rows)):
            yield ps.StreamPredictRequest(model_id=model_id if i == 0 else "", arrow_ipc=message)

    for _ in stub.StreamPredict(requests(), timeout=3600):
        pass


def single_row_latency(
    stub: ps_grpc.PredictionServiceStub, model_id: str, rows: pa.Table, calls: int
) -> dict[str, float]:
    """p50/p99 of unary Predict with one row per call."""
    requests = [
        ps.PredictRequest(model_id=model_id, arrow_ipc=to_ipc(rows.slice(i % 1000, 1)))
        for i in range(calls)
    ]
    for request in requests[:100]:
        stub.Predict(request, timeout=10)
    samples = []
    for request in requests:
        started = time.perf_counter_ns()
        stub.Predict(request, timeout=10)
        samples.append(time.perf_counter_ns() - started)
    return percentiles(samples)


def measure_kind(
    args: argparse.Namespace,
    stub: ps_grpc.PredictionServiceStub,
    server_pid: int,
    version: pb.ModelVersion,
    model: Any,
    prepared: pd.DataFrame,
    rows: pa.Table,
    features: pa.Table,
) -> dict[str, Any]:
    """Measure one trained model: baseline, stream, single-row latency, server RSS."""
    base_s = median_seconds(lambda: model.predict_proba(prepared), args.repeats)
    stream(stub, version.model_id, rows.slice(0, BATCH_ROWS))  # load the model first
    stream_s = median_seconds(lambda: stream(stub, version.model_id, rows), args.repeats)
    one_row = prepared.iloc[:1]
    base_one = [median_seconds(lambda: model.predict_proba(one_row), 1) for _ in range(200)]
    latency = single_row_latency(stub, version.model_id, features, args.calls)
    before = RssSampler(server_pid).peak
    with RssSampler(server_pid) as sampler:
        stream_rows(stub, version.model_id, rows, args.rss_rows)
    return {
        "baseline_rows_per_s": round(args.rows / base_s),
        "stream_rows_per_s": round(args.rows / stream_s),
        "stream_vs_baseline": round(base_s / stream_s, 2),
        "single_row": latency,
        "baseline_single_row_p50_ms": round(statistics.median(base_one) * 1e3, 3),
        "server_rss_before_mb": round(before / 2**20, 1),
        "server_rss_peak_growth_mb": round((sampler.peak - before) / 2**20, 1),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement and return the figures."""
    table, frame = load_adult()
    port = free_port()
    results: dict[str, Any] = {
        "benchmark": "predict",
        "mode": "quick" if args.quick else "full",
        "stream_rows": args.rows,
        "rss_rows": args.rss_rows,
        "single_row_calls": args.calls,
        "repeats": args.repeats,
        "kinds": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "store"
        command = ["-m", "ml_service", "--port", str(port), "--data-dir", str(data_dir)]
        with process(command, Path(tmp) / "server.log") as server:
            options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                ready = health_pb2.HealthCheckRequest(service="mlops.v1.readiness")
                wait_until(lambda: health.Check(ready, timeout=1).status == 1, "ml_service", 120)
                stub = ps_grpc.PredictionServiceStub(channel)
                features = table.drop_columns([TARGET])
                rows = repeat_table(features, args.rows)
                user_frame = pd.concat([frame] * (-(-args.rows // len(frame)))).iloc[: args.rows]
                for kind in KINDS:
                    version = train(channel, table, kind)
                    model = baseline_model(data_dir, version, kind)
                    prepared = baseline_frame(user_frame, version, kind)
                    results["kinds"][kind] = measure_kind(
                        args, stub, server.pid, version, model, prepared, rows, features
                    )
                    results["kinds"][kind]["stream_goal"] = GOALS[kind]
                    client = ms_grpc.ModelServiceStub(channel)
                    client.DeleteModel(ms.DeleteModelRequest(model_id=version.model_id))
    return results


def print_table(results: dict[str, Any]) -> None:
    """Print the figures for people."""
    print(f"prediction benchmark ({results['mode']}): {results['stream_rows']:,} rows streamed")
    header = (
        f"{'kind':<20} {'baseline rows/s':>15} {'stream rows/s':>14} {'ratio':>6} "
        f"{'goal':>5} {'1-row p50':>9} {'p99':>7} {'RSS +MB':>8}"
    )
    print(header)
    for kind, k in results["kinds"].items():
        print(
            f"{kind:<20} {k['baseline_rows_per_s']:>15,} {k['stream_rows_per_s']:>14,} "
            f"{k['stream_vs_baseline']:>6} {k['stream_goal']:>5} "
            f"{k['single_row']['p50_ms']:>7}ms {k['single_row']['p99_ms']:>5}ms "
            f"{k['server_rss_peak_growth_mb']:>8}"
        )


def main(argv: list[str]) -> None:
    """Parse arguments, measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench predict", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run, about a minute")
    parser.add_argument("--rows", type=int, help="rows to stream (default 1,000,000)")
    parser.add_argument("--rss-rows", type=int, help="rows for the RSS run (default 10M)")
    parser.add_argument("--calls", type=int, help="single-row calls (default 2,000)")
    parser.add_argument("--repeats", type=int, help="repeats per throughput figure")
    args = parser.parse_args(argv)
    args.rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.rss_rows = args.rss_rows or (1_000_000 if args.quick else 10_000_000)
    args.calls = args.calls or (500 if args.quick else 2_000)
    args.repeats = args.repeats or (3 if args.quick else 5)
    results = measure(args)
    print_table(results)
    print(json.dumps(results))
