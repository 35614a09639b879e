"""A CSV's separator and decimal mark, found from its first lines."""

from __future__ import annotations

import codecs
import io
import re
from pathlib import Path

import pytest

from mlops_client.csv_dialect import COMMAS, Dialect, NotCsv, sniff, sniff_file
from mlops_client.files import read_batches, read_table
from mlops_client.results import Feature, Signature


@pytest.mark.parametrize(
    ("sample", "dialect"),
    [
        (b"species,island\nAdelie,Dream\n", COMMAS),
        # A spreadsheet in a language writing decimals with a comma.
        (b"island;bill_length_mm\nDream;39,1\nBiscoe;40\n", Dialect(";", ",")),
        (b"\xef\xbb\xbfisland;bill_length_mm\nDream;39.1\n", Dialect(";", ".")),
        (b"island;year\nDream;2007\n", Dialect(";", ".")),  # no decimals to tell by
        (b"island|year\nDream|2007\n", Dialect("|")),
        (b"island\tyear\nDream\t2007\n", Dialect("\t")),
        # A quoted name holding a comma does not make commas the separator.
        (b'"bill length, mm";"island"\n39,1;Dream\n', Dialect(";", ",")),
        (b"species\nAdelie\n", COMMAS),  # one column: nothing splits it
        (b"", COMMAS),
    ],
)
def test_the_separator_splits_the_header_most_and_a_decimal_comma_is_seen(
    sample: bytes, dialect: Dialect
) -> None:
    assert sniff(sample, whole=True) == dialect


def test_a_line_cut_short_by_the_sample_is_not_read() -> None:
    # "12,5 mm of rain" cut to "12,5" would look like a decimal comma.
    sample = b"island;note\nDream;dry\nBiscoe;12,5"
    assert sniff(sample, whole=False) == Dialect(";", ".")
    assert sniff(sample, whole=True) == Dialect(";", ",")


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")],
    ids=["little-endian", "big-endian"],
)
def test_utf16_text_is_named_with_how_to_save_it(bom: bytes, encoding: str, tmp_path: Path) -> None:
    # Excel's "Unicode Text" export: UTF-16 after a byte order mark, separated by tabs. Read
    # as UTF-8 it was "line 4: 1 field where the header has 2: '\x00'", or a codec's error.
    path = tmp_path / "penguins.txt"
    path.write_bytes(bom + "island\tbill_length_mm\nDream\t39.1\nBiscoe\t40\n".encode(encoding))
    says = f'{path} is UTF-16 text, as Excel saves "Unicode Text": save the sheet as "CSV UTF-8'
    with pytest.raises(NotCsv, match=f"^{re.escape(says)}"):
        read_table(path)
    with pytest.raises(NotCsv, match=f"^{re.escape(says)}"):
        read_batches(path, 1000)
    # A byte order mark alone is no text: a binary file beginning so is left to the reader.
    binary = b"\xff\xfe\x00binary"
    assert sniff_file(io.BytesIO(binary)) == COMMAS


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("# exported by X\nx,y\n1.5,a\n", "# exported by X"),
        ("Report generated 2026-01-01\n\nx,y\n1.5,a\n", "Report generated 2026-01-01"),
        ("# exported by X\nx\n1.5\n", "# exported by X"),
        # One column: no width tells, but a name with numbers below it is the header.
        ("# exported by X\nx\n1.5\n2\n", "# exported by X"),
        ("# exported by X\n\nx\n1.5\nNA\n-2e3\n", "# exported by X"),
    ],
)
def test_a_note_above_the_header_is_named_by_every_reader(
    tmp_path: Path, text: str, note: str
) -> None:
    path = tmp_path / "noted.csv"
    path.write_text(text)
    words = (
        f"{path}, line 1: looks like a note above the header ({note!r}): remove the lines"
        " above the column names"
    )
    model = Signature((Feature("x", "numeric", "double"),), "y", "string", ("a", "b"))
    # Read as a table, the header was a row of too many fields, or (one column) the
    # note named the column, the header one of its values.
    with pytest.raises(ValueError, match="a note above the header") as caught:
        read_table(path)
    assert str(caught.value) == words
    with pytest.raises(ValueError, match="a note above the header") as caught:
        read_batches(path, 100, model)  # as predict_file reads
    assert str(caught.value) == words


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("# of items\n3\n4\n", "# of items"),  # a number below: the first line names it
        ("# tag\nred\nblue\n", "# tag"),  # text below: nothing tells a header from a value
        ("#\nvalue\n1\n", "#"),  # no "# " comment
        ("#id\nvalue\n1\n", "#id"),
        ("# count\n\n", "# count"),  # nothing below
    ],
)
def test_a_one_column_header_beginning_with_a_hash_is_read_as_its_name(
    tmp_path: Path, text: str, name: str
) -> None:
    path = tmp_path / "one.csv"
    path.write_text(text)
    assert read_table(path).column_names == [name]
