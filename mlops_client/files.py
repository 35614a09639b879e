"""Tables from CSV and Parquet files: read whole, or batch by batch in bounded memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.csv as pacsv

from mlops_client.csv_pieces import pieces_of
from mlops_client.results import Feature, Signature

# pyarrow.parquet is imported where a Parquet file is met: a CSV-only `mlops predict` starts
# sooner without it.

# Users' CSVs mark a missing value with an empty field, as the service's REST upload does.
_CONVERT = {"null_values": [""], "strings_can_be_null": True}
_NUMERIC = ("int", "uint", "float", "double", "bool", "halffloat")
# Rows the CSV writer turns into text at a time: its default (1,024) costs a sixth more CPU
# on a stream's 64k-row answers for the same bytes.
_WRITE_ROWS = 64 * 1024


def is_parquet(path: Path) -> bool:
    """Whether a path names a Parquet file (by its suffix; anything else is read as CSV)."""
    return path.suffix.lower() in (".parquet", ".pq")


def read_table(path: str | Path) -> pa.Table:
    """Read a whole CSV or Parquet file, inferring column types over every row."""
    path = Path(path)
    if is_parquet(path):
        import pyarrow.parquet as pq

        return pq.read_table(path)
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(**_CONVERT))


def _is_text(feature: Feature) -> bool:
    return feature.feature_type == "categorical" or not feature.arrow_type.startswith(_NUMERIC)


def _feature_type(feature: Feature) -> pa.DataType:
    # A block-by-block CSV reader infers types from its first block only; fixing them from the
    # model's signature means a later block cannot change its mind. Numbers are read as
    # float64 because a whole-number column may be written as 181.0 once it has a gap. Text
    # is read dictionary-encoded: adult.csv's messages are half the size, and the service's
    # CatBoost time a few percent less.
    if _is_text(feature):
        return pa.dictionary(pa.int32(), pa.string())
    return pa.bool_() if feature.arrow_type == "bool" else pa.float64()


def read_batches(
    path: str | Path,
    batch_rows: int,
    signature: Signature | None = None,
    block_bytes: int = 1 << 20,
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Open a file for reading in batches of at most `batch_rows` rows; only features if known."""
    path = Path(path)
    names = [f.name for f in signature.features] if signature else None
    if is_parquet(path):
        import pyarrow.parquet as pq

        # Categories stay dictionary-encoded as Parquet stores them: no strings to build on
        # this side, and the service maps each distinct value once instead of once per row.
        categorical = [f.name for f in signature.features if _is_text(f)] if signature else []
        parquet = pq.ParquetFile(path, read_dictionary=categorical)
        schema = parquet.schema_arrow
        columns = [n for n in names if n in schema.names] if names else None
        # Batches end at row groups, and writers often make them small (a CSV converted
        # block by block: ~9k rows); joined up to a batch's rows, the stream sends an eighth
        # of the messages, each costing the service a fixed share of its time.
        batches = rebatch(parquet.iter_batches(batch_rows, columns=columns), batch_rows)
        if columns:
            schema = pa.schema([schema.field(n) for n in columns])
        return schema, batches
    types = {f.name: _feature_type(f) for f in signature.features} if signature else {}
    pieces = pieces_of(path, batch_rows) if names else None
    if names and pieces is not None:
        # Only the model's features, in its order: other columns cost time, nothing else. A
        # missing one is left out, and the service names it.
        present = [n for n in names if n in pieces.names]
        only = pacsv.ConvertOptions(
            **_CONVERT, column_types={n: types[n] for n in present}, include_columns=present
        )
        return pa.schema([(n, types[n]) for n in present]), pieces.batches(only)
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=True)
    if names:
        # Parse only the model's features, in its order: other columns cost time, nothing else.
        only = pacsv.ConvertOptions(**_CONVERT, column_types=types, include_columns=names)
        try:
            reader = pacsv.open_csv(path, read_options=read, convert_options=only)
            return reader.schema, rebatch(reader, batch_rows)
        except pa.ArrowKeyError:
            pass  # a feature is missing: send what is there and let the service name it
    convert = pacsv.ConvertOptions(**_CONVERT, column_types=types)
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

    def write_table(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


def open_writer(out: str | Path, schema: pa.Schema) -> BatchWriter:
    """Open a CSV or Parquet writer for `out`, chosen by its suffix."""
    path = Path(out)
    if is_parquet(path):
        import pyarrow.parquet as pq

        # Dictionary pages only for columns that repeat (the label): probabilities almost
        # never do, and trying them costs the writer half its CPU for a larger file (1M
        # adult answers: 0.13 -> 0.06 CPU-s, 21.1 -> 16.9 MB).
        repeating = [f.name for f in schema if not pa.types.is_floating(f.type)]
        parquet: BatchWriter = pq.ParquetWriter(path, schema, use_dictionary=repeating)
        return parquet
    options = pacsv.WriteOptions(batch_size=_WRITE_ROWS)
    csv: BatchWriter = pacsv.CSVWriter(path, schema, write_options=options)
    return csv
