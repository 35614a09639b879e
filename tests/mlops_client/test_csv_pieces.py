"""A CSV read in pieces on two threads gives the rows Arrow's own reader gives, in order."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from mlops_client.files import columns_of, read_batches, read_table
from mlops_client.results import Feature, Signature

SIGNATURE = Signature(
    features=(
        Feature("size", "numeric", "double"),
        Feature("colour", "categorical", "string"),
        Feature("note", "categorical", "string"),
    ),
    target_column="kind",
    target_arrow_type="string",
    classes=("a", "b"),
)
TEXT_ONLY = Signature(SIGNATURE.features[1:], "kind", "string", ("a", "b"))
TYPES = {"size": pa.float64(), "colour": pa.dictionary(pa.int32(), pa.string()),
         "note": pa.dictionary(pa.int32(), pa.string())}  # fmt: skip


def lines(count: int) -> list[str]:
    """Rows with missing values, quoted commas and a column the model does not use."""
    colours = ["red", "", '"dark, blue"', "green"]
    return [
        f"{i % 97 if i % 13 else ''},{colours[i % 4]},extra{i % 5},n{i % 7}" for i in range(count)
    ]


def arrow_reads(path: Path) -> pa.Table:
    """What Arrow's own reader makes of the whole file, with the model's types."""
    read = pacsv.ReadOptions(block_size=16 << 20)  # room for the longest line here
    convert = pacsv.ConvertOptions(
        null_values=[""], strings_can_be_null=True, column_types=TYPES,
        include_columns=list(TYPES),
    )  # fmt: skip
    return pacsv.read_csv(path, read_options=read, convert_options=convert)


def read(path: Path, batch_rows: int) -> list[pa.RecordBatch]:
    """The batches predict_file sends."""
    return list(read_batches(path, batch_rows, SIGNATURE)[1])


@pytest.mark.parametrize(
    ("newline", "trailing", "bom"),
    [("\n", True, False), ("\r\n", True, False), ("\n", False, False), ("\n", True, True)],
    ids=["lf", "crlf", "no final line end", "utf-8 bom"],
)
@pytest.mark.parametrize("batch_rows", [7, 1000, 64 * 1024])
def test_pieces_hold_arrows_rows_in_order_within_the_batch_size(
    tmp_path: Path, newline: str, trailing: bool, bom: bool, batch_rows: int
) -> None:
    path = tmp_path / "rows.csv"
    text = newline.join(["size,colour,extra,note", *lines(60_000)]) + (newline if trailing else "")
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    batches = read(path, batch_rows)
    assert max(b.num_rows for b in batches) <= batch_rows
    assert len(batches) <= 60_000 // batch_rows * 1.2 + 2  # pieces about a batch's rows
    got = pa.Table.from_batches(batches)
    expected = arrow_reads(path)
    assert got.schema == expected.schema
    assert got.to_pylist() == expected.to_pylist()


def test_a_line_longer_than_a_piece_is_read_whole(tmp_path: Path) -> None:
    # Arrow's block-by-block reader refuses a line longer than its 1 MB block; pieces grow.
    path = tmp_path / "rows.csv"
    long_note = "x" * (3 << 20)  # longer than the 1 MB sample and the pieces sized from it
    rows = ["size,colour,extra,note", *lines(20_000), f"1,red,e,{long_note}", *lines(10)]
    path.write_text("\n".join(rows) + "\n")
    got = pa.Table.from_batches(read(path, 500))
    assert got.num_rows == 20_011
    assert got.column("note")[20_000].as_py() == long_note
    assert got.to_pylist() == arrow_reads(path).to_pylist()


def test_an_unreadable_value_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    rows = ["size,colour,extra,note", *lines(50_000)]
    rows[41_234] = "long,red,e,n"  # the file's line 41,235 (the header is line 1)
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"rows\.csv, line 41235, column 'size': 'long' is not"):
        read(path, 1000)


@pytest.mark.parametrize("features", [SIGNATURE, TEXT_ONLY], ids=["numbers", "text only"])
def test_a_header_repeated_by_files_joined_together_is_named_by_its_line(
    tmp_path: Path, features: Signature
) -> None:
    # `cat jan.csv feb.csv`: the second header is a row. `mlops train` read every column of
    # numbers as text (a category of each number); predicting, "'size' is not a number".
    path = tmp_path / "joined.csv"
    rows = ["size,colour,extra,note", *lines(30_000)]
    path.write_text("\n".join([*rows, *rows, *rows[:3]]) + "\n")
    says = "repeats the header line, as files joined together do: remove it, or give the files"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}, line 30002: {says}"):
        read_table(path)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}, line 30002: {says}"):
        list(read_batches(path, 1000, features)[1])
    # In the first batch, and with a value in a column of numbers, it is an ordinary row.
    path.write_text("\n".join([*rows[:5], "size,colour,extra,note", *rows[5:]]) + "\n")
    with pytest.raises(ValueError, match=rf"line 6: {says}"):
        list(read_batches(path, 1000, features)[1])
    path.write_text("\n".join([*rows[:5], "1,colour,extra,note", *rows[5:]]) + "\n")
    assert read_table(path).num_rows == 30_001


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_header_name_holding_a_line_break_is_one_name(tmp_path: Path, newline: str) -> None:
    # A spreadsheet cell typed with Alt+Enter: `mlops train` read it, but `mlops predict` cut
    # the header at its first line end and said "Empty CSV file or block: cannot infer …".
    path = tmp_path / "rows.csv"
    names = ["size", "colour\nshade", "extra", 'say "hi"']
    header = 'size,"colour\nshade",extra,"say ""hi"""'
    path.write_text(newline.join([header, *lines(2_000)]) + newline, newline="")
    features = (SIGNATURE.features[0], Feature(names[1], "categorical", "string"))
    got = pa.Table.from_batches(
        read_batches(path, 300, Signature(features, "kind", "string", ("a", "b")))[1]
    )
    assert got.column_names == names[:2]
    assert got.to_pylist() == read_table(path).select(names[:2]).to_pylist()
    assert columns_of(path) == names
