"""What a CSV file is separated by, and how its numbers mark decimals, read from its first lines.

A spreadsheet set to a language that writes decimals with a comma exports CSV separated by
';' ("39,1;18,7"); tools write tabs or '|' into files named .csv. Read as commas, such a file
was one column named after its whole header line. `mlops`, the client, the REST gateway and
the UI read a file with the dialect this module finds, so it is the same table everywhere.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
        """Arrow's options for parsing the file's lines."""
        return pacsv.ParseOptions(delimiter=self.separator)


COMMAS = Dialect()
TABS = Dialect("\t")


def is_tab_separated(path: Path) -> bool:
    """Whether a file's suffix says it is separated by tabs (.tsv, .tab)."""
    return path.suffix.lower() in (".tsv", ".tab")


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
    """The dialect of a CSV file: tabs by its suffix, else found from its first lines."""
    if is_tab_separated(path):
        return TABS
    try:
        with path.open("rb") as file:
            return sniff_file(file)
    except OSError:
        return COMMAS  # reading the file itself says why it cannot be read


def sniff_file(file: IO[bytes]) -> Dialect:
    """The dialect of an open CSV file, which is left at its start (if it can seek)."""
    if not file.seekable():
        return COMMAS
    start = file.tell()
    sample = file.read(SAMPLE_BYTES)
    file.seek(start)
    return sniff(sample, whole=len(sample) < SAMPLE_BYTES)
