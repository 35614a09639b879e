"""How a CSV file is written: its compression, separator and decimal mark.

A spreadsheet set to a language that writes decimals with a comma exports CSV separated by
';' ("39,1;18,7"); tools write tabs or '|' into files named .csv. Read as commas, such a file
was one column named after its whole header line. `mlops`, the client, the REST gateway and
the UI read a file with the dialect this module finds, so it is the same table everywhere.
Large files often come compressed (rows.csv.gz): read and written through the codec their
suffix names, they are otherwise the CSV they hold.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pyarrow.csv as pacsv

#: How much of a file's start is read to tell its dialect.
SAMPLE_BYTES = 64 * 1024
_SEPARATORS = (",", ";", "\t", "|")  # in order of preference when a header splits alike
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")
_DECIMAL_POINT = re.compile(r"[-+]?\d*\.\d+")
_LINES_LOOKED_AT = 200


@dataclass(frozen=True)
class Dialect:
    """A CSV file's field separator and decimal mark."""

    separator: str = ","
    decimal: str = "."

    def parse_options(self) -> pacsv.ParseOptions:
        """Arrow's options for parsing the file's rows.

        A quoted field may hold line breaks (free text): without saying so, Arrow's
        multi-threaded reader cut blocks inside it and failed on files over a block (1 MiB);
        the whole read costs ~5% more for it.
        """
        return pacsv.ParseOptions(delimiter=self.separator, newlines_in_values=True)


COMMAS = Dialect()
TABS = Dialect("\t")


_CODECS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def is_compressed(path: Path) -> bool:
    """Whether a file's suffix names a compression (.gz, .bz2, .xz)."""
    return path.suffix.lower() in _CODECS


def kind_suffix(path: Path) -> str:
    """The suffix saying what a file holds, under its compression's: rows.tsv.gz is .tsv."""
    return (path.with_suffix("") if is_compressed(path) else path).suffix.lower()


def open_bytes(path: Path, mode: str = "rb") -> io.BufferedIOBase:
    """Open a file's bytes, through the codec its suffix names, if any."""
    codec = _CODECS.get(path.suffix.lower())
    return cast(io.BufferedIOBase, codec(path, mode) if codec else path.open(mode))


# How each codec's files begin, for files that come without a name (an HTTP body, a pipe).
_MAGIC = {b"\x1f\x8b": ".gz", b"BZh": ".bz2", b"\xfd7zXZ\x00": ".xz"}
#: What a damaged or cut-short compressed file raises as it is read.
DECOMPRESSION_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError)
#: How many of a file's first bytes tell its codec or format.
HEAD_BYTES = 6


def decompressed(file: IO[bytes]) -> IO[bytes]:
    """An open file's bytes, decompressed if they begin as a codec's do; it must seek."""
    start = file.tell()
    head = file.read(HEAD_BYTES)
    file.seek(start)
    suffix = _codec_suffix(head)
    return cast(IO[bytes], _CODECS[suffix](file, "rb")) if suffix else file


def _codec_suffix(head: bytes) -> str:
    return next((suffix for magic, suffix in _MAGIC.items() if head.startswith(magic)), "")


def suffix_for(head: bytes) -> str:
    """The suffix of a file that begins with `head`: .parquet, .csv.gz, .csv.bz2, .csv.xz, .csv."""
    return ".parquet" if head.startswith(b"PAR1") else f".csv{_codec_suffix(head)}"


# How files that are not CSV text begin, when one is given where a CSV is expected; read as
# CSV they were "not UTF-8" or "line 2: 3 fields where the header has 1".
_OTHER_FORMATS = {
    b"PK\x03\x04": "a zip archive, as an Excel workbook (.xlsx) is: save the sheet as CSV",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 workbook (.xls): save the sheet as CSV",
    b"PAR1": "a Parquet file: name it .parquet",
}


class NotCsv(ValueError):
    """A file given as CSV that its first bytes show is something else; `what` it is."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


# Excel's "Unicode Text" (and Notepad's "Unicode") saves UTF-16 after a byte order mark.
# Read as UTF-8 it was "line 4: 1 field where the header has 2: '\x00'", or a codec's error.
_UTF16 = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
_UTF16_WHAT = (
    'UTF-16 text, as Excel saves "Unicode Text": save the sheet as "CSV UTF-8 (Comma delimited)"'
)


def _refuse_other_formats(sample: bytes, named: str) -> None:
    for magic, what in _OTHER_FORMATS.items():
        if sample.startswith(magic):
            raise NotCsv(f"{named} is {what}", what)
    if _is_utf16_text(sample):
        raise NotCsv(f"{named} is {_UTF16_WHAT}", _UTF16_WHAT)


def _is_utf16_text(sample: bytes) -> bool:
    # A byte order mark alone could begin any binary file: its text must read as UTF-16
    # (the sample may end inside a character) and break into lines or fields.
    encoding = _UTF16.get(sample[:2])
    if not encoding:
        return False
    body = sample[2 : len(sample) - len(sample) % 2]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as error:
        if error.start < len(body) - 4:
            return False
        text = body[: error.start].decode(encoding)
    return "\x00" not in text and any(mark in text for mark in ("\n", "\r", *_SEPARATORS))


def is_tab_separated(path: Path) -> bool:
    """Whether a file's suffix says it is separated by tabs (.tsv, .tab, also compressed)."""
    return kind_suffix(path) in (".tsv", ".tab")


def sniff(sample: bytes, whole: bool = False) -> Dialect:
    """The dialect of a CSV whose first bytes are `sample` (`whole`: all of it).

    The separator is the one that splits the header line into the most fields (commas
    first when several split it alike); a header that none splits is one column, commas.
    With ';', numbers written with a decimal comma ("39,1") and none with a point mean the
    comma marks decimals.
    """
    lines = sample.decode("utf-8", errors="replace").removeprefix("\ufeff").splitlines()
    if not whole:
        lines = lines[:-1]  # the last may be cut short
    if not lines:
        return COMMAS
    fields = {s: len(next(csv.reader(lines[:1], delimiter=s), [])) for s in _SEPARATORS}
    separator = max(_SEPARATORS, key=lambda s: fields[s])
    if fields[separator] < 2 or separator == ",":
        return COMMAS
    if separator != ";":
        return Dialect(separator)
    values = [v for row in csv.reader(lines[1:_LINES_LOOKED_AT], delimiter=";") for v in row]
    comma = any(_DECIMAL_COMMA.fullmatch(v) for v in values)
    point = any(_DECIMAL_POINT.fullmatch(v) for v in values)
    return Dialect(";", "," if comma and not point else ".")


def dialect_of(path: Path) -> Dialect:
    """The dialect of a CSV file: tabs by its suffix, else found from its first lines.

    Raises NotCsv for a file its first bytes show is something else (an Excel workbook).
    """
    tabs = is_tab_separated(path)
    try:
        with open_bytes(path) as file:
            sample = file.read(SAMPLE_BYTES)
    except (OSError, *DECOMPRESSION_ERRORS):
        return TABS if tabs else COMMAS  # reading the file itself says why it cannot be read
    _refuse_other_formats(sample, str(path))
    return TABS if tabs else sniff(sample, whole=len(sample) < SAMPLE_BYTES)


def sniff_file(file: IO[bytes]) -> Dialect:
    """The dialect of an open CSV file, which is left at its start (if it can seek).

    Raises NotCsv for a file its first bytes show is something else.
    """
    if not file.seekable():
        return COMMAS
    start = file.tell()
    sample = file.read(SAMPLE_BYTES)
    file.seek(start)
    _refuse_other_formats(sample, "the file")
    return sniff(sample, whole=len(sample) < SAMPLE_BYTES)
