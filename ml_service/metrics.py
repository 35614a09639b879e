"""The service's Prometheus metrics, on a registry it is given, and the /metrics HTTP server.

Labels hold only bounded values (method and code names, model kinds, job states, store
operations); model and job ids never become labels, or every new model would be a new series.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds: from a cached one-row predict (~100 us) to a slow upload or model load.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
JOB_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
BYTE_BUCKETS = tuple(float(1024**2 * 4**i) for i in range(8))  # 1 MiB .. 16 GiB


class ServiceMetrics:
    """Every metric the service records, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.rpcs = Counter(
            "mlops_rpc_requests",
            "gRPC calls handled, by method and status code.",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "mlops_rpc_duration_seconds",
            "Time to handle a gRPC call, by method and code.",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predicted_rows = Counter(
            "mlops_predicted_rows", "Rows predicted, by model kind.", ["kind"], registry=r
        )
        self.cache_hits = Counter(
            "mlops_model_cache_hits", "Predictions that found their model loaded.", registry=r
        )
        self.cache_misses = Counter(
            "mlops_model_cache_misses", "Predictions that had to wait for a load.", registry=r
        )
        self.cache_evictions = Counter(
            "mlops_model_cache_evictions",
            "Loaded models dropped: capacity (least recently used) or invalidated (retrain,"
            " delete).",
            ["reason"],
            registry=r,
        )
        self.cache_models = Gauge(
            "mlops_model_cache_models", "Loaded models held in memory.", registry=r
        )
        self.model_load_seconds = Histogram(
            "mlops_model_load_duration_seconds",
            "Time to load a model version, by kind.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.jobs_queued = Gauge(
            "mlops_training_jobs_queued", "Training jobs waiting for a worker.", registry=r
        )
        self.jobs_running = Gauge(
            "mlops_training_jobs_running", "Training jobs running in a worker.", registry=r
        )
        self.jobs_ended = Counter(
            "mlops_training_jobs_ended",
            "Training jobs that ended, by kind and final state.",
            ["kind", "state"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "mlops_training_job_duration_seconds",
            "Time from a job's start in a worker to its end, by kind and final state.",
            ["kind", "state"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.upload_bytes = Histogram(
            "mlops_training_upload_bytes",
            "Size of training uploads (Arrow IPC).",
            buckets=BYTE_BUCKETS,
            registry=r,
        )
        self.store_seconds = Histogram(
            "mlops_store_operation_duration_seconds",
            "Time of a store operation, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # labels() takes a lock and hashes its arguments; the hot path looks children up here.
        self._rpc_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._row_children: dict[str, Counter] = {}
        self._store_children: dict[str, Histogram] = {}

    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        """Count one handled call and its duration."""
        children = self._rpc_children.get((method, code))
        if children is None:
            children = (self.rpcs.labels(method, code), self.rpc_seconds.labels(method, code))
            self._rpc_children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def rows_predicted(self, kind: str, rows: int) -> None:
        """Count rows a model of `kind` predicted."""
        child = self._row_children.get(kind)
        if child is None:
            child = self._row_children[kind] = self.predicted_rows.labels(kind)
        child.inc(rows)

    def store_done(self, operation: str, seconds: float) -> None:
        """Record how long a store operation took."""
        child = self._store_children.get(operation)
        if child is None:
            child = self._store_children[operation] = self.store_seconds.labels(operation)
        child.observe(seconds)

    def gauge_from(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Read a gauge's value at scrape time, so the hot path never sets it."""
        gauge.set_function(read)


class MetricsServer:
    """The /metrics HTTP endpoint on its own port, served from a thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_port

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
