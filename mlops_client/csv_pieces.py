"""A CSV cut at line ends into pieces of about a batch's rows, parsed on two threads in order.

Arrow's block-by-block CSV reader parses one block after another on the thread that asks,
so on a file stream the parse was the one busy thread (0.46 of the client's 0.8 CPU
seconds per 1M adult rows) while the other core waited. Cutting the file at line ends
costs little (`bytearray.rfind`), and each piece is an independent small CSV that
Arrow parses with the GIL released, so two pieces parse at once. A piece of a batch's rows
is parsed straight into one batch: no pieces of blocks joined, no dictionaries merged.

Like Arrow's reader with its default `newlines_in_values=False`, this takes every line
end as a row end. A file without line ends in its first megabyte (one line, or old Mac
`\r` endings) is left to Arrow's reader (`pieces_of` gives None).
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from mlops_client.csv_dialect import open_bytes

_SAMPLE_BYTES = 1 << 20
_THREADS = 2
_ROW = re.compile(r"Row #(\d+)")


class CsvPieces:
    """A CSV's header and how to parse its lines in batches of at most `batch_rows` rows."""

    def __init__(
        self,
        path: Path,
        file: io.BufferedIOBase,
        header: bytes,
        sample: bytes,
        batch_rows: int,
        parse: pacsv.ParseOptions,
    ) -> None:
        self._parse_options = parse
        header_table = pacsv.read_csv(pa.py_buffer(header), parse_options=parse)
        self.names: list[str] = header_table.column_names
        self._path = path
        self._file = file
        self._header = header
        self._sample = sample
        self._batch_rows = batch_rows
        # Bytes per row, from the rows parsed so far: sizes the next piece to a batch's rows.
        lines = sample.count(b"\n")
        self._row_bytes = len(sample) / lines if lines else 100.0

    def batches(
        self, convert: pacsv.ConvertOptions, ahead: int = _THREADS + 1
    ) -> Iterator[pa.RecordBatch]:
        """Yield the rows as batches in file order, `ahead` pieces being parsed at a time."""
        pending: deque[tuple[int, int, Future[pa.Table]]] = deque()
        with self._file, ThreadPoolExecutor(_THREADS, "mlops-csv") as pool:
            try:
                for start, piece in self._pieces():
                    parsed = pool.submit(_parse, piece, self.names, convert, self._parse_options)
                    pending.append((start, piece.size, parsed))
                    if len(pending) >= ahead:
                        yield from self._split(*pending.popleft())
                while pending:
                    yield from self._split(*pending.popleft())
            finally:
                for _, _, parsed in pending:
                    parsed.cancel()

    def close(self) -> None:
        """Close the file, if its batches will not be read (they close it when they end)."""
        self._file.close()

    def _split(self, start: int, size: int, parsed: Future[pa.Table]) -> Iterator[pa.RecordBatch]:
        try:
            table = parsed.result()
        except pa.ArrowInvalid as exc:
            raise self._in_file_rows(exc, start) from None
        if table.num_rows:
            self._row_bytes = size / table.num_rows
        # A piece is sized to a batch's rows from the rows before it; slices (no copies)
        # keep the odd longer one within the batch size.
        for batch in table.to_batches():
            for first in range(0, batch.num_rows, self._batch_rows):
                yield batch.slice(first, self._batch_rows)

    def _in_file_rows(self, exc: pa.ArrowInvalid, start: int) -> pa.ArrowInvalid:
        # Arrow counts rows from the piece's first line; say which line of the file it is.
        # Counted only now: counting every piece's lines would cost a tenth of the parse.
        before = 0
        with open_bytes(self._path) as file:
            while start > 0 and (block := file.read(min(start, _SAMPLE_BYTES))):
                before += block.count(b"\n")
                start -= len(block)

        def in_file(found: re.Match[str]) -> str:
            return f"Row #{before + int(found.group(1))}"

        return pa.ArrowInvalid(_ROW.sub(in_file, str(exc), count=1))

    def _pieces(self) -> Iterator[tuple[int, pa.Buffer]]:
        # Each piece is read into a buffer of its own, which Arrow parses where it lies: the
        # file's bytes are copied once, and only the partial line at a piece's end again.
        start = len(self._header)  # the piece's offset in the file
        carry, at_end = self._sample, False
        while not at_end:
            want = max(int(self._row_bytes * self._batch_rows * 0.97), len(carry), 1 << 16)
            buffer = bytearray(want)
            buffer[: len(carry)] = carry
            size = len(carry) + self._file.readinto(memoryview(buffer)[len(carry) :])
            at_end = size < want
            end = size if at_end else _rows_end(buffer, size)
            while not end and not at_end:  # no row end yet: a very long row, read on
                more = self._file.read(want)
                at_end = not more
                buffer[size:] = more
                size += len(more)
                end = size if at_end else _rows_end(buffer, size)
            carry = bytes(buffer[end:size])
            if end:
                yield start, pa.py_buffer(buffer).slice(0, end)
                start += end


def _rows_end(buffer: bytearray, size: int) -> int:
    """Where the last whole row in `buffer[:size]` ends, or 0: a line end inside quotes is not one.

    The buffer begins where a row does, so a line end ends a row when an even number of
    quotes come before it (a quote inside quotes is written twice). Cut at any line end, a
    text field holding line breaks was split across two pieces, each unreadable.
    """
    end = buffer.rfind(b"\n", 0, size)
    if end < 0 or buffer.find(b'"', 0, end) < 0:
        return end + 1
    quotes = buffer.count(b'"', 0, end)
    while quotes % 2:
        before = buffer.rfind(b"\n", 0, end)
        if before < 0:
            return 0
        quotes -= buffer.count(b'"', before, end)
        end = before
    return end + 1


def _header_end(sample: bytes) -> int:
    """Where the header row ends (past its line end), or 0: a quoted name may hold line breaks.

    A spreadsheet writes a header cell typed with Alt+Enter as `"line\nbreak"`; cut at the
    first line end, the header was half a name and the rows one field short.
    """
    end, quotes = sample.find(b"\n"), 0
    start = 0
    while end >= 0:
        quotes += sample.count(b'"', start, end)
        if quotes % 2 == 0:
            return end + 1
        start, end = end, sample.find(b"\n", end + 1)
    return 0


def pieces_of(path: Path, batch_rows: int, parse: pacsv.ParseOptions) -> CsvPieces | None:
    """Open a CSV to be parsed in pieces, or None when its first megabyte has no line ends."""
    file = open_bytes(path)
    try:
        sample = file.read(_SAMPLE_BYTES)
        header_end = _header_end(sample)
        if not header_end or (sample.find(b"\n", header_end) < 0 and len(sample) == _SAMPLE_BYTES):
            file.close()
            return None
        return CsvPieces(path, file, sample[:header_end], sample[header_end:], batch_rows, parse)
    except BaseException:
        # A header Arrow cannot read raises here; the caller never gets the file to close.
        file.close()
        raise


def _parse(
    piece: pa.Buffer,
    names: list[str],
    convert: pacsv.ConvertOptions,
    parse: pacsv.ParseOptions,
) -> pa.Table:
    read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=piece.size + 1)
    return pacsv.read_csv(piece, read_options=read, parse_options=parse, convert_options=convert)
