"""Tables from CSV and Parquet files: read whole, or batch by batch in bounded memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlops_client.results import Signature

# Users' CSVs mark a missing value with an empty field, as the service's REST upload does.
_CONVERT = {"null_values": [""], "strings_can_be_null": True}
_NUMERIC = ("int", "uint", "float", "double", "bool", "halffloat")
# Large blocks let Arrow parse a block on several threads; ~16 MB is ~200k adult rows, so a
# few blocks in flight stay well inside a bounded memory budget.
BLOCK_BYTES = 16 << 20

T = TypeVar("T")


def is_parquet(path: Path) -> bool:
    """Whether a path names a Parquet file (by its suffix; anything else is read as CSV)."""
    return path.suffix.lower() in (".parquet", ".pq")


def read_table(path: str | Path) -> pa.Table:
    """Read a whole CSV or Parquet file, inferring column types over every row."""
    path = Path(path)
    if is_parquet(path):
        return pq.read_table(path)
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(**_CONVERT))


def _feature_type(arrow_type: str, feature_type: str) -> pa.DataType:
    # A block-by-block CSV reader infers types from its first block only; fixing them from the
    # model's signature means a later block cannot change its mind. Numbers are read as
    # float64 because a whole-number column may be written as 181.0 once it has a gap.
    if feature_type == "categorical" or not arrow_type.startswith(_NUMERIC):
        return pa.string()
    return pa.bool_() if arrow_type == "bool" else pa.float64()


def read_batches(
    path: str | Path,
    batch_rows: int,
    signature: Signature | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Open a file for reading in batches of at most `batch_rows` rows; only features if known."""
    path = Path(path)
    names = [f.name for f in signature.features] if signature else None
    if is_parquet(path):
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        columns = [n for n in names if n in schema.names] if names else None
        batches: Iterator[pa.RecordBatch] = parquet.iter_batches(batch_rows, columns=columns)
        if columns:
            schema = pa.schema([schema.field(n) for n in columns])
        return schema, batches
    types = (
        {f.name: _feature_type(f.arrow_type, f.feature_type) for f in signature.features}
        if signature
        else {}
    )
    convert = pacsv.ConvertOptions(**_CONVERT, column_types=types)
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=True)
    reader = pacsv.open_csv(path, read_options=read, convert_options=convert)
    if names:
        present = [n for n in names if n in reader.schema.names]
        schema = pa.schema([reader.schema.field(n) for n in present])
        selected: Iterable[pa.RecordBatch] = (b.select(present) for b in reader)
    else:
        schema, selected = reader.schema, reader
    return schema, rebatch(selected, batch_rows)


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Yield batches of exactly `rows` rows (the last may be short), whatever came in."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == rows:
                yield _join(pending)
                pending, held = [], 0
    if held:
        yield _join(pending)


def _join(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


class BatchWriter(Protocol):
    """What predict_file writes its answers with."""

    def write_batch(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


def open_writer(out: str | Path, schema: pa.Schema) -> BatchWriter:
    """Open a CSV or Parquet writer for `out`, chosen by its suffix."""
    path = Path(out)
    writer: BatchWriter = (
        pq.ParquetWriter(path, schema) if is_parquet(path) else pacsv.CSVWriter(path, schema)
    )
    return writer


_DONE = object()


class Prefetched(Iterator[T]):
    """What `items` yields, produced up to `depth` ahead on a background thread.

    Reading and encoding a file release the GIL for most of their work, so they overlap with
    the network and the answers. An error in the producer is raised here, in order. close()
    stops the producer from any thread, even while another is waiting for the next item
    (gRPC consumes a request iterator on a thread of its own).
    """

    def __init__(self, items: Iterable[T], depth: int) -> None:
        self._ready: queue.Queue[object] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(items,), name="mlops-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, items: Iterable[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def __next__(self) -> T:
        while not self._stop.is_set():
            try:
                item = self._ready.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                self._stop.set()
                raise StopIteration
            if isinstance(item, BaseException):
                self._stop.set()
                raise item
            return item  # type: ignore[return-value]
        raise StopIteration

    def close(self) -> None:
        """Stop producing and wait for the producer to notice."""
        self._stop.set()
        self._thread.join()


def written_behind(
    writer: Callable[[T], None], depth: int
) -> tuple[Callable[[T], None], Callable[[], None]]:
    """Return (submit, finish): `writer` runs on a background thread, `depth` items behind.

    finish() waits for every submitted item and raises the writer's error, if any.
    """
    pending: queue.Queue[object] = queue.Queue(depth)
    failure: list[BaseException] = []

    def drain() -> None:
        while (item := pending.get()) is not _DONE:
            if not failure:
                try:
                    writer(item)  # type: ignore[arg-type]
                except BaseException as exc:  # raised by submit() or finish()
                    failure.append(exc)

    thread = threading.Thread(target=drain, name="mlops-writer", daemon=True)
    thread.start()

    def submit(item: T) -> None:
        if failure:
            raise failure[0]
        pending.put(item)

    def finish() -> None:
        pending.put(_DONE)
        thread.join()
        if failure:
            raise failure[0]

    return submit, finish
