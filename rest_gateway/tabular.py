"""Arrow in and out: JSON rows, CSV files and IPC streams, with no per-row Python on big data."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
from anyio import to_thread
from mlops import names

from rest_gateway.problems import ProblemError

ARROW_STREAM = "application/vnd.apache.arrow.stream"
# Missing values are empty fields; strings stay strings (no dictionary encoding).
CSV_CONVERT = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
NOT_UTF8 = "the header row is not valid UTF-8"
# Arrow names a column it could not convert by its position: "In CSV column #3: ...".
_COLUMN_AT = re.compile(r"^In CSV column #(\d+): ")
_UTF8_CLASH = "CSV conversion error to string: invalid UTF8 data"
# A value a column's type, inferred from the file's first block, cannot hold.
_TYPE_CLASH = re.compile(r"^In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")


def _bad_data(field: str, error: Exception, names: list[str] | None = None) -> ProblemError:
    # Arrow's messages describe the client's own data (a bad row, a type clash), not internals.
    message = str(error).split("\n", 1)[0]
    at = _COLUMN_AT.match(message)
    if at and names and int(at[1]) < len(names):
        message = message[at.end() :].replace(_UTF8_CLASH, "text that is not valid UTF-8")
        message = f"column {names[int(at[1])]!r}: {message}"
    return ProblemError.invalid(field, message)


def _check_text(schema: pa.Schema) -> None:
    # Arrow reads a column whose first block has bytes that are not UTF-8 as binary.
    for column in schema:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            raise ProblemError.invalid(
                "file", f"column {column.name!r}: text that is not valid UTF-8"
            )


def rows_to_ipc(rows: list[dict[str, Any]]) -> bytes:
    """Build an IPC stream from JSON rows, one column per key seen in any row."""
    try:
        # One call infers a struct whose fields are the columns: the predict hot path.
        batch = pa.RecordBatch.from_struct_array(pa.array(rows))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        raise _bad_column(rows) from None
    return table_to_ipc(batch)


def _bad_column(rows: list[dict[str, Any]]) -> ProblemError:
    # Column by column, to name the first column Arrow cannot type.
    for name in dict.fromkeys(key for row in rows for key in row):
        try:
            pa.array([row.get(name) for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            return _bad_data(f"rows.{name}", error)
        except OverflowError:  # JSON integers have no bound; Arrow's have 64 bits
            return ProblemError.invalid(
                f"rows.{name}", "an integer does not fit in 64-bit integers"
            )
    return ProblemError.invalid("rows", "the rows do not make a table")


def warm_up() -> None:
    """Build one small table: Arrow's first conversion from Python imports pandas (a second)."""
    rows_to_ipc([{"warm": 1}])


def table_to_ipc(table: pa.Table | pa.RecordBatch) -> bytes:
    """Serialize a table or a batch as one IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return bytes(sink.getvalue())


def ipc_to_table(data: bytes) -> pa.Table:
    """Read an IPC stream produced by the service."""
    return pa.ipc.open_stream(data).read_all()


#: The service names each probability column this + the class; JSON keys are the class.
PROBABILITY_PREFIX = names.PROBABILITY_PREFIX


def predictions(table: pa.Table) -> list[dict[str, Any]]:
    """Turn a predictions table (label + one probability column per class) into JSON objects."""
    labels = table.column("label").to_pylist()
    columns = table.column_names[1:]
    classes = [name.removeprefix(PROBABILITY_PREFIX) for name in columns]
    probabilities = [table.column(name).to_pylist() for name in columns]
    return [
        {"label": label, "probabilities": dict(zip(classes, values, strict=True))}
        for label, *values in zip(labels, *probabilities, strict=True)
    ]


def table_to_csv(table: pa.Table) -> bytes:
    """Write a table as CSV with a header row."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return bytes(sink.getvalue())


def split(data: bytes | memoryview, size: int) -> Iterator[bytes]:
    """Cut bytes into pieces of at most `size`."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


class StartOver(Exception):
    """A CSV column held text past the block its type was inferred from: send it again.

    A streaming reader infers each column's type from its first block, so a column of
    numbers with 'unknown' on line 250,001 failed there, while a whole-file read (`mlops
    train`) takes it as text. Nothing is created before an upload ends, so the upload is
    dropped and the spooled file sent again from its start with the column read as text:
    the same table over both transports, for a second read of only such files.
    """

    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        super().__init__("the upload starts over with a column read as text")
        self.pieces = pieces


class _Retype(Exception):
    def __init__(self, column: str) -> None:
        self.column = column


def _open_csv(
    file: IO[bytes], block_bytes: int, text_columns: frozenset[str] = frozenset()
) -> pacsv.CSVStreamingReader:
    convert = CSV_CONVERT
    if text_columns:
        convert = pacsv.ConvertOptions(
            null_values=[""],
            strings_can_be_null=True,
            column_types=dict.fromkeys(text_columns, pa.string()),
        )
    try:
        reader = pacsv.open_csv(
            file, read_options=pacsv.ReadOptions(block_size=block_bytes), convert_options=convert
        )
        _ = reader.schema.names  # Arrow decodes the header's names only when asked.
    except UnicodeDecodeError:
        raise ProblemError.invalid("file", NOT_UTF8) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise _bad_data("file", error) from None
    _check_text(reader.schema)
    return reader


def _next_batch(
    reader: pacsv.CSVStreamingReader, retypable: frozenset[str] | None = None
) -> pa.RecordBatch | None:
    """The next batch, or None at the end.

    With `retypable` (the columns already read as text), a column whose inferred type a
    later block contradicts raises _Retype instead of a 400.
    """
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        names = reader.schema.names
        clash = _TYPE_CLASH.match(str(error))
        if retypable is not None and clash and int(clash[1]) < len(names):
            column = names[int(clash[1])]
            if column not in retypable and clash[2] not in ("string", "binary"):
                raise _Retype(column) from None
        raise _bad_data("file", error, names) from None


async def csv_to_ipc_pieces(
    file: IO[bytes],
    block_bytes: int,
    chunk_bytes: int,
    text_columns: frozenset[str] = frozenset(),
) -> AsyncIterator[bytes]:
    """Parse a CSV file batch by batch and yield consecutive pieces of one IPC stream.

    Raises StartOver, with the pieces to send instead, when a column must be read as text.
    """
    reader = await to_thread.run_sync(_open_csv, file, block_bytes, text_columns)
    retypable = text_columns if file.seekable() else None
    sink = io.BytesIO()
    try:
        # The writer appends each batch to the sink; the new bytes are handed on and dropped.
        with pa.ipc.new_stream(sink, reader.schema) as writer:
            while (batch := await to_thread.run_sync(_next_batch, reader, retypable)) is not None:
                writer.write_batch(batch)
                for piece in split(sink.getvalue(), chunk_bytes):
                    yield piece
                sink.seek(0)
                sink.truncate()
    except _Retype as retype:
        reader.close()  # its read-ahead stops before the file moves back to its start
        file.seek(0)
        again = text_columns | {retype.column}
        raise StartOver(csv_to_ipc_pieces(file, block_bytes, chunk_bytes, again)) from None
    for piece in split(sink.getvalue(), chunk_bytes):
        yield piece


async def csv_to_ipc_batches(file: IO[bytes], block_bytes: int) -> AsyncIterator[bytes]:
    """Parse a CSV file batch by batch and yield each batch as an IPC stream of its own."""
    reader = await to_thread.run_sync(_open_csv, file, block_bytes)
    sent = False
    while (batch := await to_thread.run_sync(_next_batch, reader)) is not None:
        sent = True
        yield table_to_ipc(pa.Table.from_batches([batch]))
    if not sent:  # a header and no rows still says which columns there are
        yield table_to_ipc(reader.schema.empty_table())


def _read_csv(file: IO[bytes], block_bytes: int) -> bytes:
    try:
        table = pacsv.read_csv(
            file,
            read_options=pacsv.ReadOptions(block_size=block_bytes),
            convert_options=CSV_CONVERT,
        )
        _ = table.schema.names  # Arrow decodes the header's names only when asked.
    except UnicodeDecodeError:
        raise ProblemError.invalid("file", NOT_UTF8) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise _bad_data("file", error) from None
    _check_text(table.schema)
    return table_to_ipc(table)


async def csv_to_ipc(file: IO[bytes], block_bytes: int) -> bytes:
    """Parse a whole CSV file into one IPC stream, off the event loop."""
    return await to_thread.run_sync(_read_csv, file, block_bytes)
