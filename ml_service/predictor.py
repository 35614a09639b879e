"""Prediction: an LRU cache of loaded models, and Arrow IPC in -> Arrow IPC predictions out."""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import contextvars
import functools
import logging
import os
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.ipc as ipc

from ml_service.arrow_ipc import check_decoded_size, check_names, check_stream_size, schema_width
from ml_service.domain import VersionRecord
from ml_service.errors import FieldViolation, InvalidArgument, ResourceExhausted
from ml_service.ids import check_id
from ml_service.kinds import get_kind
from ml_service.loaded_model import LoadedModel, output_schema
from ml_service.memory import Trimmer
from ml_service.telemetry import Telemetry

log = logging.getLogger(__name__)


# A request this large whose schema has this many more columns than the model reads is
# read with only the model's columns: each column Arrow builds costs ~500 bytes besides its
# data, so 900,000 all-null extra columns (54 MB sent) held ~12 times that. Smaller requests
# skip the check, so a one-row call pays one comparison.
WIDE_BYTES = 1 << 20
FEW_EXTRA_COLUMNS = 256


def read_rows(
    data: bytes, most_bytes: int, field: str = "arrow_ipc", keep: Collection[str] = ()
) -> pa.Table:
    """Decode and fully validate an untrusted Arrow IPC stream of at most `most_bytes` decoded.

    Compressed buffers and dictionary deltas are measured before the stream is read, and
    run-end encoded, dictionary and string_view columns before anything decodes them. Given
    `keep`, a large stream with many more columns is read with only those (and the others'
    names checked), as nothing else would look at the rest.
    """
    if not data:
        raise InvalidArgument.field(field, "no Arrow IPC data was sent")
    named_limit = "the most one message may hold (MLOPS_MAX_MESSAGE_BYTES)"
    held = check_stream_size(data, most_bytes, field, named_limit)
    options = None
    if keep and len(data) > WIDE_BYTES:
        width = schema_width(data)
        if width is not None and width > len(keep) + FEW_EXTRA_COLUMNS:
            options = _only(data, keep, field)
    try:
        reader = ipc.open_stream(pa.py_buffer(data), options=options)
        batches = []
        for batch in reader:
            batch.validate(full=True)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        check_names(table.schema, field)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidArgument.field(field, f"not a valid Arrow IPC stream: {exc}") from exc
    check_decoded_size(table, most_bytes, named_limit, held)
    return table


def _only(data: bytes, keep: Collection[str], field: str) -> ipc.IpcReadOptions | None:
    """Read options selecting the columns named in `keep`; None to read them all."""
    try:
        schema = ipc.open_stream(pa.py_buffer(data)).schema
        check_names(schema, field)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError):
        return None  # the full read says what is wrong with it
    wanted = frozenset(keep)
    # Never none: Arrow reads every column when told none; the model names what is missing.
    included = [i for i, name in enumerate(schema.names) if name in wanted] or [0]
    return ipc.IpcReadOptions(included_fields=included)


# End-of-stream marker: a continuation token followed by a zero length.
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def write_rows(batch: pa.RecordBatch, schema_message: bytes | None = None) -> bytes:
    """Encode predictions as one Arrow IPC stream: schema, batch, end of stream.

    The same bytes as an IPC stream writer's, without opening one per call; pass the
    schema's serialised message to skip encoding it again. The output has no dictionaries,
    so nothing else goes between the schema and the batch.
    """
    if schema_message is None:
        schema_message = batch.schema.serialize().to_pybytes()
    return b"".join((schema_message, batch.serialize().to_pybytes(), _EOS))


class ModelCache:
    """Keep up to `size` loaded models; concurrent first requests load a model once."""

    def __init__(
        self,
        size: int,
        open_artifact: Callable[[VersionRecord], str],
        telemetry: Telemetry | None = None,
    ) -> None:
        self._size = size
        self._open_artifact = open_artifact
        self._models: collections.OrderedDict[tuple[str, int], LoadedModel] = (
            collections.OrderedDict()
        )
        self._loading: dict[tuple[str, int], asyncio.Future[LoadedModel]] = {}
        self._generation = 0
        self.loads = 0
        self.telemetry = telemetry or Telemetry()
        metrics = self.telemetry.metrics
        metrics.gauge_from(metrics.cache_models, lambda: len(self._models))
        self._hits, self._misses = metrics.cache_hits, metrics.cache_misses
        self._pushed_out = metrics.cache_evictions.labels("capacity")
        self._invalidated = metrics.cache_evictions.labels("invalidated")

    def hit(self) -> None:
        """Count a lookup that found its model loaded without asking `get`."""
        self._hits.inc()

    def cached(self, model_id: str, version: int) -> LoadedModel | None:
        """Return the model if it is in memory."""
        key = (model_id, version)
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
        return model

    async def get(self, record: VersionRecord) -> LoadedModel:
        """Return the version's loaded model, loading it (once) when needed."""
        key = (record.model_id, record.version)
        model = self.cached(*key)
        if model is not None:
            self._hits.inc()
            return model
        self._misses.inc()
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LoadedModel] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            model = await asyncio.to_thread(self._load, record)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: other waiters may not exist
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(model)
        # A delete during the load must not leave the deleted version cached.
        if generation == self._generation:
            self._models[key] = model
            while len(self._models) > self._size:
                self._models.popitem(last=False)
                self._pushed_out.inc()
        return model

    def _load(self, record: VersionRecord) -> LoadedModel:
        started = time.perf_counter()
        with self.telemetry.tracer.start_as_current_span("model.load") as span:
            span.set_attribute("mlops.model.kind", record.kind)
            kind = get_kind(record.kind)
            path = self._open_artifact(record)
            model = kind.runtime.load(path)
        self.loads += 1
        seconds = time.perf_counter() - started
        self.telemetry.metrics.model_load_seconds.labels(record.kind).observe(seconds)
        log.info("model loaded", extra={"model_id": record.model_id, "version": record.version})
        return LoadedModel(
            model_id=record.model_id,
            version=record.version,
            kind=kind,
            model=model,
            signature=record.training.signature,
            output_schema=output_schema(record.training.signature),
        )

    def evict(self, model_id: str, version: int = 0) -> None:
        """Drop a model's versions (or one version) from memory."""
        self._generation += 1
        for key in [k for k in self._models if k[0] == model_id and version in (0, k[1])]:
            del self._models[key]
            self._invalidated.inc()


# Small requests are answered on the event loop: a thread hop would cost more than the work.
INLINE_BYTES = 64 * 1024
STREAM_IN_FLIGHT = 2
# Larger ones run on a few threads of their own rather than asyncio's default pool (six
# threads here): CatBoost keeps scratch memory in each thread that predicted, sized by the
# largest batch it saw, so after a 64k-row stream spread over six threads the idle service
# held ~35 MB more, ~15 MB with two. A stream keeps two batches in flight; CatBoost uses
# every core for a large batch by itself, so more threads would mostly hold more memory.
PREDICT_THREADS = max(STREAM_IN_FLIGHT, min(os.cpu_count() or 1, 4))
_PREDICT_POOL = ThreadPoolExecutor(PREDICT_THREADS, thread_name_prefix="mlops-predict")
T = TypeVar("T")


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run a prediction on a prediction thread, in the caller's context (request id, span)."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_PREDICT_POOL, functools.partial(context.run, fn, *args))


@dataclass(frozen=True)
class PredictLimits:
    """How much one call or one stream batch may ask for and answer."""

    #: Most input rows.
    rows: int
    #: Most output values, rows x (classes + 1), checked before any work is done.
    values: int
    #: Largest gRPC message; a stream answer is split to stay well under it.
    message_bytes: int

    @property
    def part_bytes(self) -> int:
        """Most bytes of predictions in one stream message, leaving room for the envelope."""
        return max(self.message_bytes // 2, 1)


class Predictions:
    """Resolve versions, keep models loaded, and predict single requests and streams."""

    def __init__(
        self,
        cache: ModelCache,
        get_version: Callable[[str, int], VersionRecord],
        limits: PredictLimits,
    ) -> None:
        self.cache = cache
        self.limits = limits
        self._get_version = get_version
        self._latest: dict[str, int] = {}
        self._generation = 0
        # Large predictions leave freed buffers with the allocators; hand them back after.
        self.trimmer = Trimmer()

    def forget(self, model_id: str, version: int = 0) -> None:
        """Forget what is known of a model after a commit or a delete."""
        self._generation += 1
        self._latest.pop(model_id, None)
        self.cache.evict(model_id, version)

    def forget_latest(self, model_id: str) -> None:
        """Forget which version is a model's latest, after another replica committed one."""
        self._generation += 1
        self._latest.pop(model_id, None)

    async def model(self, model_id: str, version: int) -> LoadedModel:
        """Return the loaded model for a version; 0 means the latest."""
        check_id(model_id, "model_id")
        generation = self._generation
        if version == 0 and model_id in self._latest:
            version = self._latest[model_id]
        cached = self.cache.cached(model_id, version) if version else None
        if cached is not None:
            self.cache.hit()
            return cached
        record = await asyncio.to_thread(self._get_version, model_id, version)
        # A commit or delete during the lookup may have made the answer stale.
        if version == 0 and generation == self._generation:
            self._latest[model_id] = record.version
        return await self.cache.get(record)

    async def predict(self, model_id: str, version: int, data: bytes) -> tuple[int, bytes]:
        """Predict one IPC stream; returns the version that answered and the IPC predictions."""
        model = await self.model(model_id, version)
        telemetry = self.cache.telemetry
        span = telemetry.child_span("model.predict")
        if span is None:
            encoded, rows = await self._predict_ipc(model, data)
        else:
            # Not made current: nothing inside starts a span, and attaching costs a one-row call.
            with span:
                encoded, rows = await self._predict_ipc(model, data)
                span.set_attribute("mlops.rows", rows)
        telemetry.metrics.rows_predicted(model.kind.name, rows)
        return model.version, encoded

    async def _predict_ipc(self, model: LoadedModel, data: bytes) -> tuple[bytes, int]:
        if len(data) <= INLINE_BYTES:
            return _predict_ipc(model, data, self.limits)
        with self.trimmer.working():
            return await _off_loop(_predict_ipc, model, data, self.limits)

    async def predict_rows(self, model: LoadedModel, rows: pa.Table) -> pa.RecordBatch:
        """Predict decoded rows under the same caps; big inputs off the event loop."""
        check_size(model, rows.num_rows, self.limits)
        if rows.nbytes <= INLINE_BYTES:
            answer = model.predict(rows)
        else:
            with self.trimmer.working():
                answer = await _off_loop(model.predict, rows)
        self.cache.telemetry.metrics.rows_predicted(model.kind.name, rows.num_rows)
        return answer

    async def stream(
        self, model_id: str, version: int, messages: collections.abc.AsyncIterator[bytes]
    ) -> collections.abc.AsyncIterator[tuple[int, int, bytes, bool]]:
        """Answer each input IPC message in order, a few in flight at once.

        Yields (batch index, version, IPC predictions, continued): a batch whose answer would
        not fit one message is answered in consecutive parts, all but the last continued.
        The bounded queue is the back-pressure: when the client reads slowly, the writer
        stops taking results, the reader stops taking requests, and gRPC flow control
        holds the client back; memory stays bounded.
        """
        model = await self.model(model_id, version)
        queue: asyncio.Queue[asyncio.Future[tuple[list[bytes], int]] | None]
        queue = asyncio.Queue(STREAM_IN_FLIGHT)

        async def read() -> None:
            index = 0
            try:
                async for data in messages:
                    task = asyncio.ensure_future(
                        _off_loop(_predict_parts, model, data, self.limits, index)
                    )
                    await queue.put(task)
                    index += 1
            finally:
                await queue.put(None)

        reader = asyncio.create_task(read())
        index = 0
        metrics = self.cache.telemetry.metrics
        with self.trimmer.working():
            try:
                while (task := await queue.get()) is not None:
                    parts, rows = await task
                    metrics.rows_predicted(model.kind.name, rows)
                    for number, part in enumerate(parts, 1):
                        yield index, model.version, part, number < len(parts)
                    index += 1
                await reader
            finally:
                reader.cancel()
                while not queue.empty():
                    pending = queue.get_nowait()
                    if pending is not None:
                        pending.cancel()


def check_size(
    model: LoadedModel, rows: int, limits: PredictLimits, batch_index: int | None = None
) -> None:
    """Refuse, before any work, more rows or more output values than one answer may hold."""
    where = "the request has" if batch_index is None else f"batch {batch_index} has"
    if rows > limits.rows:
        raise ResourceExhausted(
            f"{where} {rows} rows; the limit is {limits.rows} per call or stream batch"
        )
    classes = len(model.signature.classes)
    if rows * (classes + 1) > limits.values:
        most = limits.values // (classes + 1)
        raise ResourceExhausted(
            f"{where} {rows} rows and the model has {classes} classes: "
            f"{rows * (classes + 1):,} output values, over the limit of "
            f"{limits.values:,} (rows x (classes + 1)); send at most {most:,} rows per call"
            + (", or stream them with StreamPredict" if batch_index is None else " or batch")
        )


def _predict_table(
    model: LoadedModel, data: bytes, limits: PredictLimits, batch_index: int | None = None
) -> pa.RecordBatch:
    try:
        rows = read_rows(data, limits.message_bytes, keep=model.column_names)
        check_size(model, rows.num_rows, limits, batch_index)
        return model.predict(rows)
    except InvalidArgument as exc:
        if batch_index is None:
            raise
        # In a stream, say which batch failed as well as which column.
        raise InvalidArgument.of(
            FieldViolation(f"batches[{batch_index}].{v.field}", v.description)
            for v in exc.violations
        ) from exc


def _predict_ipc(model: LoadedModel, data: bytes, limits: PredictLimits) -> tuple[bytes, int]:
    answer = _predict_table(model, data, limits)
    encoded = write_rows(answer, model.schema_message)
    if len(encoded) > limits.part_bytes:
        raise ResourceExhausted(
            f"the predictions for {answer.num_rows} rows take {len(encoded):,} bytes, over "
            f"the {limits.part_bytes:,} bytes one answer may hold; send fewer rows per call, "
            "or use StreamPredict, which splits large answers"
        )
    return encoded, answer.num_rows


def _predict_parts(
    model: LoadedModel, data: bytes, limits: PredictLimits, batch_index: int
) -> tuple[list[bytes], int]:
    """Predict one stream batch as IPC parts of consecutive rows, each under the part size."""
    answer = _predict_table(model, data, limits, batch_index)
    return _encoded_parts(answer, model, limits), answer.num_rows


def _encoded_parts(rows: pa.RecordBatch, model: LoadedModel, limits: PredictLimits) -> list[bytes]:
    encoded = write_rows(rows, model.schema_message)
    if len(encoded) <= limits.part_bytes or rows.num_rows <= 1:
        return [encoded]
    half = rows.num_rows // 2
    return [
        *_encoded_parts(rows.slice(0, half), model, limits),
        *_encoded_parts(rows.slice(half), model, limits),
    ]
