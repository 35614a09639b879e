"""Prediction: an LRU cache of loaded models, and Arrow rows in -> Arrow predictions out."""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from mlops import names

from ml_service import model_input
from ml_service.arrow_ipc import check_names
from ml_service.dataset import decode_labels
from ml_service.domain import FeatureKind, Signature, VersionRecord
from ml_service.errors import FieldViolation, InvalidArgument, ResourceExhausted
from ml_service.ids import check_id
from ml_service.kinds import Kind, get_kind

log = logging.getLogger(__name__)

#: The predicted class; the probability columns are PROBABILITY_PREFIX + the class's text,
#: so no class name can collide with another output column, whatever the classes are called.
LABEL_COLUMN = names.LABEL_COLUMN
PROBABILITY_PREFIX = names.PROBABILITY_PREFIX


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory with what is needed to check its input and shape its output."""

    model_id: str
    version: int
    kind: Kind
    model: object
    signature: Signature
    output_schema: pa.Schema
    #: Every class in the target's Arrow type, so answers take labels instead of casting.
    labels: pa.Array = field(init=False, repr=False)
    #: The output schema as an IPC message, written before every answer's batch.
    schema_message: bytes = field(init=False, repr=False)
    # What conform decided per input schema (serialised, so field metadata counts).
    _plans: dict[bytes, list[int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    _features: list[tuple[str, FeatureKind]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = decode_labels(np.arange(len(self.signature.classes)), self.signature)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "_features", [(f.name, f.kind) for f in self.signature.features])
        object.__setattr__(self, "schema_message", self.output_schema.serialize().to_pybytes())

    def predict(self, table: pa.Table) -> pa.RecordBatch:
        """Predict labels and class probabilities for the rows of `table`, in order."""
        features = model_input.build(self._conform(table), self._features)
        try:
            proba = self.kind.runtime.predict_proba(self.model, features)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            # Conversions the kinds do not name themselves still say what Arrow refused.
            raise InvalidArgument.field("arrow_ipc", f"the rows cannot be used: {exc}") from exc
        finite = np.isfinite(proba).all(axis=1)
        if not finite.all():
            raise _not_finite(features, int(np.argmin(finite)), self.signature)
        best = np.argmax(proba, axis=1)
        if len(best) <= _FEW_ROWS:
            # A compute call (take) costs ~10 us whatever the length; a few rows' labels don't.
            labels = pa.array([self.labels[i] for i in best.tolist()], self.labels.type)
        else:
            labels = self.labels.take(pa.array(best))
        columns = [labels, *(pa.array(proba[:, i]) for i in range(proba.shape[1]))]
        return pa.RecordBatch.from_arrays(columns, schema=self.output_schema)

    def _conform(self, table: pa.Table) -> pa.Table:
        """conform(), deciding once per input schema: clients send the same one every call."""
        key = table.schema.serialize().to_pybytes()
        plan = self._plans.get(key)
        if plan is None:
            plan = conform_plan(table.schema, self.signature)  # a refused schema is not kept
            if len(self._plans) >= _PLANS_KEPT:
                # A client cycling through schemas only costs itself the cache.
                self._plans.clear()
            self._plans[key] = plan
        return table.select(plan)


_PLANS_KEPT = 64
_FEW_ROWS = 16


def output_schema(signature: Signature) -> pa.Schema:
    """The predictions' schema: the label in the target's type, then one float per class."""
    label_type = decode_labels(np.zeros(0, np.int64), signature).type
    fields = [pa.field(LABEL_COLUMN, label_type)]
    fields += [pa.field(PROBABILITY_PREFIX + name, pa.float64()) for name in signature.classes]
    return pa.schema(fields)


def _not_finite(features: pa.Table, row: int, signature: Signature) -> InvalidArgument:
    # Finite inputs far beyond what training saw (1e308, say) overflow the model's arithmetic;
    # the largest number in the row is the one to blame.
    largest = model_input.largest_magnitude(features, row)
    if largest is None:
        return InvalidArgument.field(
            "arrow_ipc", f"row {row}: the model cannot give finite probabilities for these values"
        )
    name = signature.features[largest[0]].name
    return InvalidArgument.field(
        f"columns.{name}",
        f"row {row}: column '{name}' holds {largest[1]:.6g}, too large in magnitude for this "
        "model to give finite probabilities; send values of the size seen in training",
    )


def _refused_type(field: pa.Field) -> str | None:
    # Unregistered extension types arrive as their storage type, marked in the metadata.
    if field.metadata and b"ARROW:extension:name" in field.metadata:
        return (
            f"extension type {field.metadata[b'ARROW:extension:name'].decode()!r} is not accepted"
        )
    return _refused_arrow_type(field.type)


def _refused_arrow_type(arrow_type: pa.DataType) -> str | None:
    if isinstance(arrow_type, pa.BaseExtensionType):
        return f"extension type {arrow_type} is not accepted"
    if pa.types.is_nested(arrow_type):
        return f"nested type {arrow_type} is not accepted; send flat columns"
    if pa.types.is_dictionary(arrow_type):
        return _refused_arrow_type(arrow_type.value_type)
    return None


def _is_binary(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_fixed_size_binary(arrow_type)
    )


def conform(table: pa.Table, signature: Signature) -> pa.Table:
    """Select the model's feature columns by name; refuse missing columns and unsafe types."""
    return table.select(conform_plan(table.schema, signature))


def conform_plan(schema: pa.Schema, signature: Signature) -> list[int]:
    """Return the positions of the model's features in `schema`, or raise what conform would."""
    problems = []
    for column in schema:
        refused = _refused_type(column)
        if refused:
            problems.append(FieldViolation(f"columns.{column.name}", refused))
    counts = collections.Counter(schema.names)
    duplicated = sorted(n for n, c in counts.items() if c > 1)
    problems += [FieldViolation(f"columns.{n}", "appears more than once") for n in duplicated]
    present = set(counts)
    unique = {f.name: f.type for f in schema if counts[f.name] == 1}
    problems += [
        FieldViolation(f"columns.{f.name}", f"missing column '{f.name}' ({f.arrow_type})")
        for f in signature.features
        if f.name not in present
    ]
    problems += [
        FieldViolation(f"columns.{f.name}", "binary values are not accepted; send text or numbers")
        for f in signature.features
        if f.name in unique and _is_binary(unique[f.name])
    ]
    if problems:
        raise InvalidArgument.of(problems)
    return [schema.get_field_index(f.name) for f in signature.features]


def read_rows(data: bytes, field: str = "arrow_ipc") -> pa.Table:
    """Decode and fully validate an untrusted Arrow IPC stream."""
    if not data:
        raise InvalidArgument.field(field, "no Arrow IPC data was sent")
    try:
        reader = ipc.open_stream(pa.py_buffer(data))
        batches = []
        for batch in reader:
            batch.validate(full=True)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        check_names(table.schema, field)
        return table
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise InvalidArgument.field(field, f"not a valid Arrow IPC stream: {exc}") from exc


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

    def __init__(self, size: int, open_artifact: Callable[[VersionRecord], str]) -> None:
        self._size = size
        self._open_artifact = open_artifact
        self._models: collections.OrderedDict[tuple[str, int], LoadedModel] = (
            collections.OrderedDict()
        )
        self._loading: dict[tuple[str, int], asyncio.Future[LoadedModel]] = {}
        self._generation = 0
        self.loads = 0

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
            return model
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
        return model

    def _load(self, record: VersionRecord) -> LoadedModel:
        kind = get_kind(record.kind)
        path = self._open_artifact(record)
        model = kind.runtime.load(path)
        self.loads += 1
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


# Small requests are answered on the event loop: a thread hop would cost more than the work.
INLINE_BYTES = 64 * 1024
STREAM_IN_FLIGHT = 2


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
            return cached
        record = await asyncio.to_thread(self._get_version, model_id, version)
        # A commit or delete during the lookup may have made the answer stale.
        if version == 0 and generation == self._generation:
            self._latest[model_id] = record.version
        return await self.cache.get(record)

    async def predict(self, model_id: str, version: int, data: bytes) -> tuple[int, bytes]:
        """Predict one IPC stream; returns the version that answered and the IPC predictions."""
        model = await self.model(model_id, version)
        if len(data) <= INLINE_BYTES:
            return model.version, _predict_ipc(model, data, self.limits)
        return model.version, await asyncio.to_thread(_predict_ipc, model, data, self.limits)

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
        queue: asyncio.Queue[asyncio.Future[list[bytes]] | None] = asyncio.Queue(STREAM_IN_FLIGHT)

        async def read() -> None:
            index = 0
            try:
                async for data in messages:
                    task = asyncio.ensure_future(
                        asyncio.to_thread(_predict_parts, model, data, self.limits, index)
                    )
                    await queue.put(task)
                    index += 1
            finally:
                await queue.put(None)

        reader = asyncio.create_task(read())
        index = 0
        try:
            while (task := await queue.get()) is not None:
                parts = await task
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


def _predict_table(
    model: LoadedModel, data: bytes, limits: PredictLimits, batch_index: int | None = None
) -> pa.RecordBatch:
    try:
        rows = read_rows(data)
        where = "the request has" if batch_index is None else f"batch {batch_index} has"
        if rows.num_rows > limits.rows:
            raise ResourceExhausted(
                f"{where} {rows.num_rows} rows; the limit is {limits.rows} per call or stream batch"
            )
        classes = len(model.signature.classes)
        if rows.num_rows * (classes + 1) > limits.values:
            most = limits.values // (classes + 1)
            raise ResourceExhausted(
                f"{where} {rows.num_rows} rows and the model has {classes} classes: "
                f"{rows.num_rows * (classes + 1):,} output values, over the limit of "
                f"{limits.values:,} (rows x (classes + 1)); send at most {most:,} rows per call, "
                "or stream smaller batches with StreamPredict"
            )
        return model.predict(rows)
    except InvalidArgument as exc:
        if batch_index is None:
            raise
        # In a stream, say which batch failed as well as which column.
        raise InvalidArgument.of(
            FieldViolation(f"batches[{batch_index}].{v.field}", v.description)
            for v in exc.violations
        ) from exc


def _predict_ipc(model: LoadedModel, data: bytes, limits: PredictLimits) -> bytes:
    answer = _predict_table(model, data, limits)
    encoded = write_rows(answer, model.schema_message)
    if len(encoded) > limits.part_bytes:
        raise ResourceExhausted(
            f"the predictions for {answer.num_rows} rows take {len(encoded):,} bytes, over "
            f"the {limits.part_bytes:,} bytes one answer may hold; send fewer rows per call, "
            "or use StreamPredict, which splits large answers"
        )
    return encoded


def _predict_parts(
    model: LoadedModel, data: bytes, limits: PredictLimits, batch_index: int
) -> list[bytes]:
    """Predict one stream batch as IPC parts of consecutive rows, each under the part size."""
    return _encoded_parts(_predict_table(model, data, limits, batch_index), model, limits)


def _encoded_parts(rows: pa.RecordBatch, model: LoadedModel, limits: PredictLimits) -> list[bytes]:
    encoded = write_rows(rows, model.schema_message)
    if len(encoded) <= limits.part_bytes or rows.num_rows <= 1:
        return [encoded]
    half = rows.num_rows // 2
    return [
        *_encoded_parts(rows.slice(0, half), model, limits),
        *_encoded_parts(rows.slice(half), model, limits),
    ]
