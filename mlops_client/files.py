"""Tables from CSV and Parquet files: read whole, or batch by batch in bounded memory."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mlops_client.csv_dialect import (
    DECOMPRESSION_ERRORS,
    Dialect,
    NotCsv,
    dialect_of,
    is_compressed,
    is_tab_separated,
    open_bytes,
)
from mlops_client.csv_pieces import pieces_of
from mlops_client.results import Feature, Signature

if TYPE_CHECKING:
    import pyarrow.parquet as pq

# pyarrow.parquet is imported where a Parquet file is met: a CSV-only `mlops predict` starts
# sooner without it.

# What a CSV field holds for a missing value: nothing, or one of the markers pandas reads as
# missing (R's NA, a spreadsheet's #N/A, a database's NULL). Read as values, an "NA" among
# numbers made the column text: trained as a category of each number. The REST gateway
# reads CSVs with the same markers, so a file is the same table either way.
MISSING_VALUES = (
    "",
    "NA",
    "N/A",
    "n/a",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "<NA>",
    "NULL",
    "null",
    "None",
    "NaN",
    "-NaN",
    "nan",
    "-nan",
    "1.#IND",
    "-1.#IND",
    "1.#QNAN",
    "-1.#QNAN",
)
_CONVERT = {"null_values": list(MISSING_VALUES), "strings_can_be_null": True}
_NUMERIC = ("int", "uint", "float", "double", "bool", "halffloat")
# Rows the CSV writer turns into text at a time: its default (1,024) costs a sixth more CPU
# on a stream's 64k-row answers for the same bytes.
_WRITE_ROWS = 64 * 1024
# Arrow's words for a CSV it could not read, which describe_csv_error says again.
_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to (\w+): (.*)", re.S
)
_FIELDS = re.compile(
    r"CSV parse error: (?:Row #(\d+): )?Expected (\d+) columns, got (\d+): (.*)", re.S
)
_INVALID_VALUE = re.compile(r"invalid value '(.*)'", re.S)
_WANTED = {
    "double": "a number",
    "float": "a number",
    "int64": "a whole number",
    "bool": "true or false",
}
_SEPARATORS = (";", "\t", "|")
_NOT_UTF8 = "CSV conversion error to string: invalid UTF8 data"


def is_parquet(path: Path) -> bool:
    """Whether a path names a Parquet file (by its suffix; anything else is read as CSV)."""
    return path.suffix.lower() in (".parquet", ".pq")


def delimiter_of(path: Path) -> str:
    """The field separator an answers file is written with: tabs for .tsv and .tab, else commas."""
    return "\t" if is_tab_separated(path) else ","


def read_table(path: str | Path) -> pa.Table:
    """Read a whole CSV or Parquet file, inferring column types over every row."""
    path = Path(path)
    if is_parquet(path):
        return parquet_file(path).read()
    with naming_codec_errors(path):
        return _read_csv(path)


def _read_csv(path: Path) -> pa.Table:
    dialect = dialect_of(path)
    convert = pacsv.ConvertOptions(**_CONVERT, decimal_point=dialect.decimal)
    try:
        with csv_source(path) as source:
            parse = dialect.parse_options()
            table = pacsv.read_csv(source, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as error:
        raise _located(path, error, convert) from None
    for index, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            # Arrow reads a column whose text is not UTF-8 as bytes (a Latin-1 export, say),
            # which the service cannot take; read as text, it says on which line.
            as_text = pacsv.ConvertOptions(
                **_CONVERT, decimal_point=dialect.decimal, column_types={field.name: pa.string()}
            )
            bytes_read = pa.ArrowInvalid(f"In CSV column #{index}: {_NOT_UTF8}")
            raise _located(path, bytes_read, as_text)
    if repeated_header(table) is not None:
        raise _header_again(path, dialect)
    if table.num_columns == 1 and table.column_names[0].startswith("# "):
        note = note_above(_head_rows(path, dialect), dialect.decimal)
        if note is not None:
            raise ValueError(f"{path}, line 1: {note_above_header(note)}")
    return table


def _head_rows(path: Path, dialect: Dialect) -> list[list[str]]:
    # Only for a file of one column whose name begins "# ": its first rows, read again.
    with open_bytes(path) as file:
        lines = io.TextIOWrapper(cast(IO[bytes], file), encoding="utf-8-sig", errors="replace")
        return head_rows(lines, dialect.separator)


#: How many rows below a one-column header tell whether it is a name above numbers.
NOTE_ROWS = 50


def head_rows(lines: Iterable[str], separator: str) -> list[list[str]]:
    """A CSV's first rows, enough for note_above to judge its first line."""
    reader = csv.reader(lines, delimiter=separator)
    return [row for _, row in zip(range(NOTE_ROWS + 2), reader, strict=False)]


def note_above(rows: Sequence[list[str]], decimal: str = ".") -> str | None:
    """The first line of a CSV if it is a note above the header, from its first rows; or None.

    A note is one field. Above a wider row (the header) it is a note whatever it says, as
    Arrow's reader finds it ("Expected 1 columns, got 2"). In a file of one column no width
    tells, so it is a note only if it is a comment ("# exported by X") above a line of text
    with numbers below it: a name above numbers is the header. A comment above text or above
    numbers stays the column's name (`# of items` over 3, 4; `# tag` over red, blue): nothing
    tells a header from a value there.
    """
    filled = [row for row in rows if any(field.strip() for field in row)]
    if len(filled) < 2 or len(filled[0]) != 1:
        return None
    note, header, below = filled[0][0], filled[1], filled[2:]
    if len(header) > 1:
        return note
    if not note.startswith("# ") or not below or any(len(row) != 1 for row in below):
        return None
    values = [row[0].strip() for row in below if row[0].strip() not in MISSING_VALUES]
    named = not _is_number(header[0], decimal) and header[0].strip() not in MISSING_VALUES
    return note if named and values and all(_is_number(v, decimal) for v in values) else None


def _is_number(text: str, decimal: str) -> bool:
    try:
        float(text.strip().replace(decimal, "."))
    except ValueError:
        return False
    return True


#: What a row repeating the header is told: files joined one after another (`cat a.csv
#: b.csv`, a spreadsheet's appended exports) hold their header again. Read as a row, it made
#: every numeric column text, trained as a category of each number.
HEADER_AGAIN = (
    "repeats the header line, as files joined together do: remove it, or give the files one"
    " at a time"
)


def _header_again(path: Path, dialect: Dialect) -> ValueError:
    with open_bytes(path) as file:
        line = line_of_header(cast(IO[bytes], file), dialect)
    return ValueError(f"{path}, line {line}: {HEADER_AGAIN}" if line else f"{path}: {HEADER_AGAIN}")


def repeated_header(table: pa.Table | pa.RecordBatch) -> int | None:
    """The index of the first row that holds its columns' names, if any.

    A column of numbers is text once the header is among its rows, so such a row holds its
    name in every text column and nothing in the others (a name read as a number or a
    missing value). Only the first text column is compared over every row, unless it holds
    its name.
    """
    text = [_is_string(field.type) for field in table.schema]
    if True not in text:
        return None
    first = text.index(True)
    if not _holds(table.column(first), table.column_names[first]):
        return None
    same = pc.equal(table.column(first), table.column_names[first])
    for index, name in enumerate(table.column_names):
        column = table.column(index)
        same = pc.and_(same, pc.equal(column, name) if text[index] else pc.is_null(column))
    found = pc.index(pc.fill_null(same, False), True).as_py()
    return None if found < 0 else found


def _holds(column: pa.Array | pa.ChunkedArray, value: str) -> bool:
    # A batch's dictionary holds each of its column's values once: a few to compare, not
    # every row (a tenth of the time, on the stream of a file's batches).
    values = column.dictionary if isinstance(column, pa.DictionaryArray) else column
    held: bool = pc.any(pc.equal(values, value)).as_py()
    return held


def _is_string(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def line_of_header(file: IO[bytes], dialect: Dialect) -> int | None:
    """The line (counting the header as 1) of the first row repeating a CSV's header, if any.

    Read by Python's reader, row by row, so only once a table has been found to hold one: a
    quoted field may hold line breaks, so the row's index does not tell its line.
    """
    text = io.TextIOWrapper(file, encoding="utf-8-sig", errors="replace", newline="")
    try:
        reader = csv.reader(text, delimiter=dialect.separator)
        header = next(reader, None)
        line = reader.line_num + 1
        for row in reader:
            if row == header:
                return line
            line = reader.line_num + 1
        return None
    finally:
        text.detach()


def csv_source(path: Path) -> contextlib.AbstractContextManager[Any]:
    """What Arrow's CSV readers take for a file: its path, or its bytes decompressed."""
    return open_bytes(path) if is_compressed(path) else contextlib.nullcontext(path)


def parquet_file(path: Path, **options: Any) -> pq.ParquetFile:
    """Open a Parquet file (its footer read), or say in plain words why it cannot be."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, **options)
    except pa.ArrowInvalid as error:
        raise ValueError(f"{path} cannot be read as Parquet: {error}") from None


def parquet_batches(
    path: Path, parquet: pq.ParquetFile, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """A Parquet file's batches; a damaged page is named as the file's fault."""
    try:
        yield from parquet.iter_batches(batch_rows, columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path} cannot be read as Parquet: {error}") from None


def _located(path: Path, error: pa.ArrowInvalid, convert: pacsv.ConvertOptions) -> ValueError:
    # Arrow's reader on several threads does not say on which line it stopped; read again on
    # one, which does (only once reading has failed).
    try:
        one_thread = pacsv.ReadOptions(use_threads=False)
        parse = dialect_of(path).parse_options()
        with csv_source(path) as source:
            pacsv.read_csv(
                source, read_options=one_thread, parse_options=parse, convert_options=convert
            )
    except pa.ArrowInvalid as again:
        error = again
    return csv_error(path, error, header_of(path))


def header_of(path: Path) -> list[str] | None:
    """The names on a CSV file's first line, or None if it has none that can be read."""
    try:
        separator = dialect_of(path).separator
        with open_bytes(path) as file:
            # The reader, not one line: a quoted name may hold line breaks.
            lines = io.TextIOWrapper(cast(IO[bytes], file), encoding="utf-8-sig", errors="replace")
            return next(csv.reader(lines, delimiter=separator), None)
    except (OSError, csv.Error, NotCsv, *DECOMPRESSION_ERRORS):
        return None


def data_file(path: str | Path) -> Path:
    """The path of a file to read, or why it is none, in the same words for every method."""
    path = Path(path)
    if path.is_dir():  # a partitioned dataset, as to_parquet(partition_cols=...) writes one
        raise IsADirectoryError(
            f"{path} is a directory, not a CSV or Parquet file; a partitioned Parquet dataset"
            " can be read with pyarrow.dataset.dataset(path).to_table() and the table passed"
        )
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        # A pipe or a device: the readers go back to its start (separator, then rows).
        raise OSError(f"{path} is not a regular file; save its rows to a file first")
    return path


def columns_of(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file, read without its rows."""
    path = data_file(path)
    if is_parquet(path):
        return list(parquet_file(path).schema_arrow.names)
    header = header_of(path)
    if not header:
        raise ValueError(f"{path}: the first line names no columns")
    return header


def csv_error(path: Path, error: pa.ArrowInvalid, header: list[str] | None) -> ValueError:
    """Arrow's complaint about a CSV file in the file's terms: its name, line and column."""
    where, what = describe_csv_error(error, header)
    return ValueError(f"{path}, {where}: {what}" if where else f"{path}: {what}")


def describe_csv_error(error: Exception, header: Sequence[str] | None) -> tuple[str, str]:
    """Where in a CSV Arrow stopped ("line 3, column 'x'", or "" if it did not say) and why.

    Arrow names a column by its position and a line as "Row #N" (counting the header line,
    as an editor does), and only when it read on one thread. The gateway words its CSV
    errors with this too, so a file gets the same words over REST and from `mlops`.
    """
    text = str(error)
    if text.startswith("Empty CSV file"):
        return "", "the file is empty; a CSV file begins with a line naming its columns"
    if found := _CONVERSION.match(text):
        index, line, type_name, detail = found.groups()
        column = int(index)
        name = header[column] if header and column < len(header) else f"number {column + 1}"
        value = _INVALID_VALUE.match(detail)
        if value and header and value[1] == name:
            return (f"line {line}" if line else ""), HEADER_AGAIN
        if "UTF8" in detail:
            problem = "holds bytes that are not UTF-8 text (save the file as UTF-8)"
        elif value:
            wanted = _WANTED.get(type_name, f"a value of type {type_name}")
            problem = f"{_clip(value[1])!r} is not {wanted}"
        else:
            problem = detail
        return (f"line {line}, column {name!r}" if line else f"column {name!r}"), problem
    if "straddling object straddles two block boundaries" in text:
        # Arrow reads a file in blocks of 1 MiB; a quoted value may not cross one.
        return (
            "",
            "a value is over 1 MiB long (quoted text, with its line breaks?): shorten it, or"
            " remove its column",
        )
    if found := _FIELDS.match(text):
        line, expected, got, row = found.groups()
        first = header[0] if header and len(header) == 1 else None
        if expected == "1" and (line == "2" or (first or "").startswith("#")):
            return "line 1", note_above_header(first)
        fields = "1 field" if got == "1" else f"{got} fields"
        return (f"line {line}" if line else ""), (
            f"{fields} where the header has {expected}: {_clip(row)!r}"
        )
    return "", text.split("\n", 1)[0]


def note_above_header(first: str | None) -> str:
    """What a file is told whose first line is a note above its header, as some tools write.

    Read as the header, the note named one column, and the real header was a row of too
    many fields, or (to `predict_file`) the model's features were all missing.
    """
    quoted = f" ({_clip(first)!r})" if first is not None else ""
    return f"looks like a note above the header{quoted}: remove the lines above the column names"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_features(path: Path, header: list[str], features: list[str]) -> None:
    # Said here, in the file's terms, before anything is sent: the service would name the
    # column of a batch, and take no notice of a feature that appears twice.
    twice = [name for name in features if header.count(name) > 1]
    if twice:
        raise ValueError(f"{path}: column {twice[0]!r} appears more than once in its header")
    missing = [name for name in features if name not in header]
    if not missing:
        return
    if len(header) == 1 and (header[0].startswith("#") or _wider_below(path)):
        raise ValueError(f"{path}, line 1: {note_above_header(header[0])}")
    listed = ", ".join(repr(name) for name in missing[:6]) + (", …" if len(missing) > 6 else "")
    message = f"{path} lacks {len(missing)} of the model's {len(features)} features: {listed}"
    if len(header) == 1 and any(sep in header[0] for sep in _SEPARATORS):
        message += f"; its header is one column, {_clip(header[0])!r}: separate them with commas"
    raise ValueError(message)


def _wider_below(path: Path) -> bool:
    # Only once the features are found missing: the next line that is not blank, read again.
    try:
        with open_bytes(path) as file:
            lines = io.TextIOWrapper(cast(IO[bytes], file), encoding="utf-8-sig", errors="replace")
            reader = csv.reader(lines, delimiter=dialect_of(path).separator)
            next(reader, None)
            below = next((row for row in reader if row), [])
    except (OSError, csv.Error, NotCsv, *DECOMPRESSION_ERRORS):
        return False
    return len(below) > 1


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
        footer = parquet_file(path).metadata
        if names:
            _check_features(path, footer.schema.to_arrow_schema().names, names)
        # Categories stay dictionary-encoded as Parquet stores them: no strings to build on
        # this side, and the service maps each distinct value once instead of once per row.
        categorical = [f.name for f in signature.features if _is_text(f)] if signature else []
        parquet = parquet_file(path, metadata=footer, read_dictionary=categorical)
        schema = parquet.schema_arrow
        if names:
            schema = pa.schema([schema.field(n) for n in names])
        # Batches end at row groups, and writers often make them small (a CSV converted
        # block by block: ~9k rows); joined up to a batch's rows, the stream sends an eighth
        # of the messages, each costing the service a fixed share of its time.
        return schema, rebatch(parquet_batches(path, parquet, batch_rows, names), batch_rows)
    types = {f.name: _feature_type(f) for f in signature.features} if signature else {}
    dialect = dialect_of(path)
    parse = dialect.parse_options()
    try:
        with naming_codec_errors(path):
            pieces = pieces_of(path, batch_rows, parse) if names else None
    except pa.ArrowInvalid as error:  # its header line
        raise csv_error(path, error, header_of(path)) from None
    if names and pieces is not None:
        try:
            _check_features(path, pieces.names, names)
        except ValueError:
            pieces.close()
            raise
        # Only the model's features, in its order: other columns cost time, nothing else.
        only = pacsv.ConvertOptions(
            **_CONVERT, decimal_point=dialect.decimal, column_types=types, include_columns=names
        )
        schema = pa.schema([(n, types[n]) for n in names])
        return schema, _explained(path, pieces.names, pieces.batches(only))
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=True)
    convert = pacsv.ConvertOptions(**_CONVERT, decimal_point=dialect.decimal, column_types=types)
    source = open_bytes(path) if is_compressed(path) else path
    try:
        reader = pacsv.open_csv(
            source, read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as error:
        if not isinstance(source, Path):
            source.close()
        raise csv_error(path, error, header_of(path)) from None
    header = reader.schema.names
    if names:
        try:
            _check_features(path, header, names)
        except ValueError:
            reader.close()
            raise
        schema = pa.schema([reader.schema.field(n) for n in names])
        selected: Iterable[pa.RecordBatch] = (b.select(names) for b in reader)
    else:
        schema, selected = reader.schema, reader
    if not isinstance(source, Path):
        selected = _closing(selected, source)
    return schema, rebatch(_explained(path, header, selected), batch_rows)


def _closing(
    batches: Iterable[pa.RecordBatch], file: io.BufferedIOBase
) -> Iterator[pa.RecordBatch]:
    with file:
        yield from batches


def _explained(
    path: Path, header: list[str], batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    # Arrow's reader finds a bad value only when it reaches it, as the stream runs. A header
    # read again as a row is an error only where a column of numbers holds it; text
    # columns are looked at batch by batch (one comparison of one column, for most).
    try:
        with naming_codec_errors(path):
            for batch in batches:
                if repeated_header(batch) is not None:
                    raise _header_again(path, dialect_of(path))
                yield batch
    except pa.ArrowInvalid as error:
        raise csv_error(path, error, header) from None


@contextlib.contextmanager
def naming_codec_errors(path: Path) -> Iterator[None]:
    """Say what a compressed file's codec found wrong in the file's terms, not the codec's.

    A gzip file cut short raised EOFError, which the command line took for Ctrl-D
    ("Aborted."); a .gz that is not gzip said only "Not a gzipped file (b'sp')".
    """
    try:
        yield
    except (OSError, *DECOMPRESSION_ERRORS) as error:
        if not is_compressed(path) or isinstance(error, FileNotFoundError | PermissionError):
            raise
        raise ValueError(f"{path} cannot be decompressed: {error}") from None


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


def check_output(source: Path, out: Path) -> None:
    """Refuse, before any row is read, an output the answers could not go to or would ruin."""
    if out.is_dir():
        raise ValueError(f"{out} is a directory; name a file for the answers")
    if not out.parent.is_dir():
        raise ValueError(f"{out.parent} is not a directory, so {out} cannot be written")
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"{out.parent} is not writable, so {out} cannot be written")
    if out.exists() and source.exists() and out.samefile(source):
        raise ValueError(f"{out} is the file being predicted; write the answers to another file")


def open_writer(out: str | Path | BinaryIO, schema: pa.Schema) -> BatchWriter:
    """Open a CSV or Parquet writer for `out`, chosen by its suffix; an open stream gets CSV.

    A compressed suffix (answers.csv.gz) writes the CSV through its codec.
    """
    if not isinstance(out, str | Path):
        stream = pacsv.WriteOptions(batch_size=_WRITE_ROWS)
        to_stream: BatchWriter = pacsv.CSVWriter(out, schema, write_options=stream)
        return to_stream
    path = Path(out)
    if is_compressed(path):
        options = pacsv.WriteOptions(batch_size=_WRITE_ROWS, delimiter=delimiter_of(path))
        file = open_bytes(path, "wb")
        return _Closing(pacsv.CSVWriter(file, schema, write_options=options), file)
    if is_parquet(path):
        import pyarrow.parquet as pq

        # Dictionary pages only for columns that repeat (the label): probabilities almost
        # never do, and trying them costs the writer half its CPU for a larger file (1M
        # adult answers: 0.13 -> 0.06 CPU-s, 21.1 -> 16.9 MB).
        repeating = [f.name for f in schema if not pa.types.is_floating(f.type)]
        parquet: BatchWriter = pq.ParquetWriter(path, schema, use_dictionary=repeating)
        return parquet
    options = pacsv.WriteOptions(batch_size=_WRITE_ROWS, delimiter=delimiter_of(path))
    csv: BatchWriter = pacsv.CSVWriter(path, schema, write_options=options)
    return csv


class _Closing:
    """A writer into a file of our own opening (a codec's), which closes after it."""

    def __init__(self, writer: BatchWriter, file: io.BufferedIOBase) -> None:
        self._writer = writer
        self._file = file

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.close()
