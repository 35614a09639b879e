"""Arrow in and out: JSON rows, CSV files and IPC streams, with no per-row Python on big data."""

from __future__ import annotations

import csv as py_csv
import io
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
from anyio import to_thread
from mlops import names

from mlops_client.csv_dialect import (
    COMMAS,
    DECOMPRESSION_ERRORS,
    Dialect,
    NotCsv,
    decompressed,
    sniff_file,
)
from mlops_client.files import (
    HEADER_AGAIN,
    MISSING_VALUES,
    describe_csv_error,
    head_rows,
    line_of_header,
    note_above,
    note_above_header,
    repeated_header,
)
from rest_gateway.problems import ProblemError

ARROW_STREAM = "application/vnd.apache.arrow.stream"
# Missing values as `mlops` reads them; strings stay strings (no dictionary encoding).
CSV_CONVERT = pacsv.ConvertOptions(null_values=list(MISSING_VALUES), strings_can_be_null=True)
NOT_UTF8 = "the header row is not valid UTF-8 (save the file as UTF-8)"
# A value a column's type, inferred from the file's first block, cannot hold.
_TYPE_CLASH = re.compile(r"^In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")


# What a JSON value is, in a person's words (booleans are not counted as numbers here).
_JSON_KINDS = {str: "text", int: "numbers", float: "numbers", bool: "true/false"}


def _bad_data(field: str, error: Exception) -> ProblemError:
    # Arrow's messages describe the client's own data (a type clash), not internals.
    return ProblemError.invalid(field, str(error).split("\n", 1)[0])


def _check_text(schema: pa.Schema) -> None:
    # Arrow reads a column whose first block has bytes that are not UTF-8 as binary.
    for column in schema:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            raise ProblemError.invalid(
                "file",
                f"column {column.name!r}: holds bytes that are not UTF-8 text (save the file as"
                " UTF-8)",
            )


def rows_to_ipc(rows: list[dict[str, Any]], max_columns: int) -> bytes:
    """Build an IPC stream from JSON rows, one column per key seen in any row."""
    _check_width(rows, max_columns)
    try:
        # One call infers a struct whose fields are the columns: the predict hot path.
        batch = pa.RecordBatch.from_struct_array(pa.array(rows))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        raise _bad_column(rows) from None
    return table_to_ipc(batch)


def _check_width(rows: list[dict[str, Any]], max_columns: int) -> None:
    # Typing a column costs Arrow ~1.5 kB whatever its values: a 14 MB row of a million
    # keys took 1.5 GB and 9 s of the event loop, for a stream no gRPC message could hold.
    names: set[str] = set()
    for row in rows:
        names.update(row)
        if len(names) > max_columns:
            raise _too_wide("JSON rows are", max_columns)


def _too_wide(what: str, max_columns: int) -> ProblemError:
    return ProblemError(
        413,
        f"{what} limited to {max_columns} columns (MLOPS_GATEWAY_MAX_COLUMNS); send wider"
        " tables as Arrow IPC.",
    )


def _bad_column(rows: list[dict[str, Any]]) -> ProblemError:
    # Column by column, to name the first column Arrow cannot type.
    for name in dict.fromkeys(key for row in rows for key in row):
        values = [row.get(name) for row in rows]
        try:
            pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            kind_of = [_JSON_KINDS.get(type(v), "other values") for v in values if v is not None]
            if len(set(kind_of)) > 1:  # Arrow says "Expected bytes, got a 'int' object"
                present = [i for i, v in enumerate(values) if v is not None]
                odd = next(i for i, k in zip(present, kind_of, strict=True) if k != kind_of[0])
                return ProblemError.invalid(
                    f"rows.{name}",
                    f"holds {kind_of[0]} and {_JSON_KINDS.get(type(values[odd]), 'other values')}"
                    f" (row {odd + 1}, counting from 1: {json.dumps(values[odd])}); a column"
                    " takes one kind of value",
                )
            return _bad_data(f"rows.{name}", error)
        except OverflowError:  # JSON integers have no bound; Arrow's have 64 bits
            return ProblemError.invalid(
                f"rows.{name}", "an integer does not fit in 64-bit integers"
            )
    return ProblemError.invalid("rows", "the rows do not make a table")


def warm_up() -> None:
    """Build one small table: Arrow's first conversion from Python imports pandas (a second)."""
    rows_to_ipc([{"warm": 1}], 1)


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


class _Cursor(io.RawIOBase):
    """One Arrow reader's own place in a file that is read again from its start.

    A closed reader's read-ahead can go on reading on Arrow's threads for a moment; through
    the one file object it moved the place the next reader read from (once to the end, and
    a value over a block was told "Empty CSV file"). Each read seeks to this cursor's place
    under the file's lock.
    """

    def __init__(self, file: IO[bytes], lock: threading.Lock, at: int) -> None:
        super().__init__()
        self._file, self._lock, self._at = file, lock, at

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with self._lock:
            self._file.seek(self._at)
            data = self._file.read(-1 if size is None else size)
        self._at += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class _Csv:
    """A CSV body being read: the file, its block size, and the columns read as text.

    A file that can seek is read again from `start` (with a column as text, or to say on
    which line it failed); every read of it then holds `lock`, Arrow's through a _Cursor.
    """

    file: IO[bytes]
    block_bytes: int
    max_columns: int
    dialect: Dialect = COMMAS
    text_columns: frozenset[str] = frozenset()
    start: int = 0
    lock: threading.Lock | None = field(default=None, compare=False)

    @classmethod
    def of(cls, file: IO[bytes], block_bytes: int, max_columns: int) -> _Csv:
        """The file (decompressed if gzip, bzip2 or xz) in the dialect its first lines show.

        As `mlops` reads it: a .csv.gz that `mlops train` takes is taken over REST too.
        """
        try:
            if not file.seekable():
                return cls(file, block_bytes, max_columns)
            file = decompressed(file)
            dialect = sniff_file(file)
            return cls(
                file, block_bytes, max_columns, dialect, start=file.tell(), lock=threading.Lock()
            )
        except NotCsv as error:
            raise ProblemError.invalid("file", str(error)) from None
        except DECOMPRESSION_ERRORS as error:
            raise _cut_short(error) from None

    def _convert(self) -> pacsv.ConvertOptions:
        if not self.text_columns and self.dialect == COMMAS:
            return CSV_CONVERT
        return pacsv.ConvertOptions(
            null_values=list(MISSING_VALUES),
            strings_can_be_null=True,
            column_types=dict.fromkeys(self.text_columns, pa.string()),
            decimal_point=self.dialect.decimal,
        )

    def _reader(self, read: pacsv.ReadOptions) -> pacsv.CSVStreamingReader:
        parse = self.dialect.parse_options()
        file = self.file if self.lock is None else _Cursor(self.file, self.lock, self.start)
        return pacsv.open_csv(
            file, read_options=read, parse_options=parse, convert_options=self._convert()
        )

    def open(self) -> pacsv.CSVStreamingReader:
        """A reader past the header; a header that cannot be read is a 400."""
        self._check_width()
        try:
            read = pacsv.ReadOptions(block_size=self.block_bytes)
            reader = self._reader(read)
            _ = reader.schema.names  # Arrow decodes the header's names only when asked.
        except UnicodeDecodeError:
            raise ProblemError.invalid("file", NOT_UTF8) from None
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            located = self._located(error)
            raise _csv_problem(located, self._first_line()) from None
        except DECOMPRESSION_ERRORS as error:
            raise _cut_short(error) from None
        _check_text(reader.schema)
        return reader

    def _first_line(self) -> list[str] | None:
        # Arrow names no columns when it cannot read past the header; a note above it (a
        # tool's "# exported by ...") is quoted from here, read again only on that path.
        if self.lock is None:
            return None
        try:
            with self.lock:
                self.file.seek(self.start)
                head = self.file.readline(self.block_bytes)
            line = head.decode("utf-8-sig", errors="replace")
            return next(py_csv.reader([line], delimiter=self.dialect.separator), None)
        except (OSError, py_csv.Error, *DECOMPRESSION_ERRORS):
            return None

    def _check_width(self) -> None:
        # Arrow's reader takes ~9 kB a column before reading a row: a 1.5 MB CSV of 120,000
        # columns (a few kB gzipped) took 1.1 GB. Its header is counted first.
        if self.lock is None:
            return
        with self.lock:
            self.file.seek(self.start)
            head = self.file.read(self.block_bytes)  # Arrow reads no wider header than this
        lines = io.StringIO(head.decode("utf-8-sig", errors="replace"), newline="")
        header = next(py_csv.reader(lines, delimiter=self.dialect.separator), [])
        if len(header) > self.max_columns:
            raise _too_wide("a CSV body is", self.max_columns)
        if len(header) == 1 and header[0].startswith("# "):
            # One column gives Arrow nothing to stop at: a note above the header would name
            # the column, the header one of its values (as `mlops` reads it, read_table).
            lines.seek(0)
            note = note_above(head_rows(lines, self.dialect.separator), self.dialect.decimal)
            if note is not None:
                raise ProblemError.invalid("file", f"line 1: {note_above_header(note)}")

    def next_batch(self, reader: pacsv.CSVStreamingReader) -> pa.RecordBatch | None:
        """The next batch, or None at the end; a 400 naming the line for a bad one.

        A column whose type, inferred from the first block, a later block contradicts
        raises _Retype instead, if the file can be read again from its start.
        """
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return None
        except DECOMPRESSION_ERRORS as error:
            raise _cut_short(error) from None
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            names = reader.schema.names
            reader.close()  # its read-ahead stops soon, not at once (see _Cursor)
            clash = _TYPE_CLASH.match(str(error))
            header_again = describe_csv_error(error, names)[1] == HEADER_AGAIN
            if self.lock is not None and clash and int(clash[1]) < len(names) and not header_again:
                column = names[int(clash[1])]
                if column not in self.text_columns and clash[2] not in ("string", "binary"):
                    raise _Retype(column) from None
            raise _csv_problem(self._located(error), names) from None
        # A header read again as a row (files joined together) where only text columns
        # hold it: one comparison of one column per batch, for most.
        if repeated_header(batch) is not None:
            reader.close()
            raise self._header_again()
        return batch

    def _header_again(self) -> ProblemError:
        line = None
        if self.lock is not None:
            with self.lock:
                self.file.seek(self.start)
                line = line_of_header(self.file, self.dialect)
        return ProblemError.invalid(
            "file", f"line {line}: {HEADER_AGAIN}" if line else HEADER_AGAIN
        )

    def retyped(self, column: str) -> _Csv:
        """The same file, from its start, with `column` read as text too."""
        return replace(self, text_columns=self.text_columns | {column})

    def _located(self, error: Exception) -> Exception:
        # Arrow's reader on several threads does not say on which line it stopped; read
        # again on one, which does (only once reading has failed).
        if self.lock is None:
            return error
        try:
            read = pacsv.ReadOptions(block_size=self.block_bytes, use_threads=False)
            for _ in self._reader(read):
                pass
        except (pa.ArrowInvalid, pa.ArrowTypeError) as again:
            located: Exception = again
            return located
        except (OSError, UnicodeDecodeError, *DECOMPRESSION_ERRORS):
            pass
        return error


def _cut_short(error: Exception) -> ProblemError:
    return ProblemError.invalid("file", f"the file cannot be decompressed: {error}")


def _csv_problem(error: Exception, names: list[str] | None) -> ProblemError:
    # The words `mlops` uses for the same file: its line, the column by name, the value.
    where, what = describe_csv_error(error, names)
    return ProblemError.invalid("file", f"{where}: {what}" if where else what)


def csv_to_ipc_pieces(
    file: IO[bytes], block_bytes: int, chunk_bytes: int, max_columns: int
) -> AsyncIterator[bytes]:
    """Parse a CSV file batch by batch and yield consecutive pieces of one IPC stream.

    Raises StartOver, with the pieces to send instead, when a column must be read as text.
    """
    return _pieces(_Csv.of(file, block_bytes, max_columns), chunk_bytes)


async def _pieces(csv: _Csv, chunk_bytes: int) -> AsyncIterator[bytes]:
    reader = await to_thread.run_sync(csv.open)
    sink = io.BytesIO()
    try:
        # The writer appends each batch to the sink; the new bytes are handed on and dropped.
        with pa.ipc.new_stream(sink, reader.schema) as writer:
            while (batch := await to_thread.run_sync(csv.next_batch, reader)) is not None:
                writer.write_batch(batch)
                for piece in split(sink.getvalue(), chunk_bytes):
                    yield piece
                sink.seek(0)
                sink.truncate()
    except _Retype as retype:
        raise StartOver(_pieces(csv.retyped(retype.column), chunk_bytes)) from None
    for piece in split(sink.getvalue(), chunk_bytes):
        yield piece


async def csv_to_ipc_batches(
    file: IO[bytes], block_bytes: int, max_columns: int
) -> AsyncIterator[bytes]:
    """Parse a CSV file batch by batch and yield each batch as an IPC stream of its own.

    Each batch is a stream of its own, so a column a later block shows to be text is read
    again from the file's start as text, the rows already sent skipped.
    """
    csv = _Csv.of(file, block_bytes, max_columns)
    reader = await to_thread.run_sync(csv.open)
    sent = skip = 0
    while True:
        try:
            batch = await to_thread.run_sync(csv.next_batch, reader)
        except _Retype as retype:
            csv = csv.retyped(retype.column)
            reader = await to_thread.run_sync(csv.open)
            skip = sent
            continue
        if batch is None:
            break
        if skip:
            dropped = min(skip, batch.num_rows)
            batch, skip = batch.slice(dropped), skip - dropped
            if not batch.num_rows:
                continue
        sent += batch.num_rows
        yield table_to_ipc(pa.Table.from_batches([batch]))
    if not sent:  # a header and no rows still says which columns there are
        yield table_to_ipc(reader.schema.empty_table())
