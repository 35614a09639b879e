"""Arrow, CSV and content negotiation helpers, without a service."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from mlops_client.files import note_above_header, read_table
from rest_gateway import tabular
from rest_gateway.negotiation import negotiate
from rest_gateway.problems import ProblemError

ARROW = tabular.ARROW_STREAM
JSON = "application/json"


async def collect(file: io.BufferedIOBase, block: int, chunk: int) -> list[bytes]:
    """Gather every IPC piece a CSV file turns into."""
    return [piece async for piece in tabular.csv_to_ipc_pieces(file, block, chunk, 100)]  # type: ignore[arg-type]


def test_a_big_csv_streams_as_many_small_pieces_of_one_ipc_stream(data_dir_path: Path) -> None:
    with (data_dir_path / "adult.csv").open("rb") as file:
        pieces = asyncio.run(collect(file, block=256 * 1024, chunk=64 * 1024))

    table = pa.ipc.open_stream(b"".join(pieces)).read_all()
    assert len(pieces) > 40 and max(map(len, pieces)) <= 64 * 1024
    assert table.num_rows == 32561
    assert table.schema.field("workclass").type == pa.string()
    assert table.column("workclass").null_count > 0  # empty fields are missing, not ""


def test_missing_value_markers_are_read_as_mlops_reads_them(tmp_path: Path) -> None:
    # R's NA, a spreadsheet's #N/A, a database's NULL: missing, as pandas reads them. As
    # values, one "NA" made a column of numbers text, trained as a category of each number.
    data = b"x,kind\n1.5,a\nNA,b\n#N/A,NULL\n2,a\n"
    pieces = asyncio.run(collect(io.BytesIO(data), block=1 << 20, chunk=1 << 20))

    table = pa.ipc.open_stream(b"".join(pieces)).read_all()
    assert table.column("x").to_pylist() == [1.5, None, None, 2.0]
    assert table.column("kind").to_pylist() == ["a", "b", None, "a"]
    (tmp_path / "r.csv").write_bytes(data)
    assert table.equals(read_table(tmp_path / "r.csv"))  # the table `mlops train` sends


def test_semicolons_and_decimal_commas_are_read_as_mlops_reads_them(tmp_path: Path) -> None:
    data = b"island;bill_length_mm;year\nDream;39,1;2007\nBiscoe;;2008\n"
    pieces = asyncio.run(collect(io.BytesIO(data), block=1 << 20, chunk=1 << 20))

    table = pa.ipc.open_stream(b"".join(pieces)).read_all()
    assert table.column("bill_length_mm").to_pylist() == [39.1, None]
    (tmp_path / "eu.csv").write_bytes(data)
    assert table.equals(read_table(tmp_path / "eu.csv"))


def test_text_with_line_breaks_streams_over_many_blocks() -> None:
    # Arrow's reader cut blocks at any line end unless told values may hold them: "CSV
    # parser got out of sync with chunker" for a free-text column past the first block.
    rows = [f'{i},"seen at dawn\nnote {i}"\n' if i % 3 else f"{i},plain\n" for i in range(60_000)]
    data = ("n,comment\n" + "".join(rows)).encode()
    pieces = asyncio.run(collect(io.BytesIO(data), block=64 * 1024, chunk=1 << 20))

    table = pa.ipc.open_stream(b"".join(pieces)).read_all()
    assert table.num_rows == 60_000
    assert table.column("comment")[1].as_py() == "seen at dawn\nnote 1"


def test_a_quoted_value_over_a_block_is_a_400_in_words() -> None:
    data = b'x,y\n1.5,"' + b"a" * (3 << 20) + b'"\n2,b\n'
    with pytest.raises(ProblemError) as caught:
        asyncio.run(collect(io.BytesIO(data), block=1 << 20, chunk=1 << 20))

    assert caught.value.status == 400
    assert "a value is over 1 MiB long (quoted text" in caught.value.errors[0].description


class _SlowOnArrowsThreads(io.BytesIO):
    """A file Arrow's read-ahead reads slowly, so a closed reader is still reading after."""

    def read(self, size: int | None = -1) -> bytes:
        if threading.current_thread() is not threading.main_thread() and (size or 0) > 4096:
            time.sleep(0.05)
        return super().read(size)


def test_a_file_read_again_is_read_from_its_start_while_a_closed_reader_still_reads() -> None:
    # Read again to name the line, the file was at the end a closed reader's read-ahead
    # had left it at: CI once answered "CSV parse error: Empty CSV file or block".
    data = b'x,y\n1.5,"' + b"a" * (3 << 20) + b'"\n2,b\n'
    with pytest.raises(ProblemError) as caught:
        asyncio.run(collect(_SlowOnArrowsThreads(data), block=1 << 20, chunk=1 << 20))

    assert caught.value.errors[0].description.startswith("a value is over 1 MiB long")


def test_a_column_read_again_as_text_while_a_closed_reader_still_reads_loses_no_row() -> None:
    rows = [f"{i},{i if i < 50_000 else 'n/a-' + str(i)}\n" for i in range(60_000)]
    data = ("n,code\n" + "".join(rows)).encode()

    async def sent() -> list[bytes]:
        file = _SlowOnArrowsThreads(data)
        try:
            return [p async for p in tabular.csv_to_ipc_pieces(file, 64 * 1024, 1 << 20, 100)]
        except tabular.StartOver as again:
            return [p async for p in again.pieces]

    table = pa.ipc.open_stream(b"".join(asyncio.run(sent()))).read_all()
    assert table.num_rows == 60_000
    assert table.column("code").type == pa.string()
    assert table.column("code")[59_999].as_py() == "n/a-59999"
    assert table.column("n").to_pylist() == list(range(60_000))


def test_a_broken_csv_is_a_400_on_the_file_field() -> None:
    with pytest.raises(ProblemError) as caught:
        asyncio.run(collect(io.BytesIO(b"a,b\n1,2\n3\n"), block=1 << 20, chunk=1 << 20))

    assert caught.value.status == 400
    assert caught.value.errors[0].field == "file"
    # On the line an editor shows, found by reading again on one thread.
    assert caught.value.errors[0].description == "line 3: 1 field where the header has 2: '3'"


def test_json_rows_become_typed_columns_and_clashes_name_the_column() -> None:
    rows = [{"n": 1, "s": "x"}, {"n": 2.5, "t": True}]

    table = pa.ipc.open_stream(tabular.rows_to_ipc(rows, 100)).read_all()

    assert table.column_names == ["n", "s", "t"]
    assert table.column("n").to_pylist() == [1.0, 2.5]
    assert table.column("s").to_pylist() == ["x", None]
    with pytest.raises(ProblemError) as caught:
        tabular.rows_to_ipc([{"n": 1}, {"n": None}, {"n": "one"}], 100)
    assert caught.value.errors[0].field == "rows.n"
    # Not Arrow's "Could not convert 'one' with type str: tried to convert to int64".
    assert caught.value.errors[0].description == (
        'holds numbers and text (row 3, counting from 1: "one"); a column takes one kind of value'
    )


def test_predictions_pair_labels_with_class_probabilities() -> None:
    table = pa.table({"label": ["a", "b"], "a": [0.75, 0.25], "b": [0.25, 0.75]})

    assert tabular.predictions(table) == [
        {"label": "a", "probabilities": {"a": 0.75, "b": 0.25}},
        {"label": "b", "probabilities": {"a": 0.25, "b": 0.75}},
    ]


@pytest.mark.parametrize(
    ("accept", "default", "chosen"),
    [
        ("", "text/csv", "text/csv"),
        ("*/*", ARROW, ARROW),
        ("application/json", "text/csv", "application/json"),
        ("text/csv;q=0.5, application/json", ARROW, "application/json"),
        ("application/*", "text/csv", "application/json"),
        ("text/*, application/json;q=0", "application/json", "text/csv"),
        ("image/png", "application/json", None),
    ],
)
def test_negotiate_picks_by_quality_then_the_inputs_kind(
    accept: str, default: str, chosen: str | None
) -> None:
    assert negotiate(accept, default, (JSON, "text/csv", ARROW)) == chosen


def test_a_header_that_is_not_utf8_is_a_400() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"

    with pytest.raises(ProblemError) as streamed:
        asyncio.run(collect(io.BytesIO(png), block=1 << 20, chunk=1 << 20))

    assert streamed.value.status == 400
    says = "the header row is not valid UTF-8 (save the file as UTF-8)"
    assert streamed.value.errors[0].description == says


def test_utf16_text_is_a_400_saying_how_to_save_it() -> None:
    # Excel's "Unicode Text": was "line 4: 1 field where the header has 2: '\x00'".
    data = "island\tyear\nDream\t2007\nBiscoe\t2008\n".encode("utf-16")

    with pytest.raises(ProblemError) as caught:
        asyncio.run(collect(io.BytesIO(data), block=1 << 20, chunk=1 << 20))

    assert caught.value.errors[0].field == "file"
    assert caught.value.errors[0].description == (
        'the file is UTF-16 text, as Excel saves "Unicode Text": save the sheet as "CSV UTF-8'
        ' (Comma delimited)"'
    )


@pytest.mark.parametrize("at", [5, 30_000], ids=["first block", "blocks deep"])
def test_a_header_repeated_by_files_joined_together_is_a_400_naming_its_line(at: int) -> None:
    # Was trained with every column of numbers read as text (a category of each number):
    # in the first block by inference, past it by reading the file again as text.
    rows = ["n,kind", *(f"{i},{'ab'[i % 2]}" for i in range(40_000))]
    data = "\n".join([*rows[:at], "n,kind", *rows[at:]]).encode()

    with pytest.raises(ProblemError) as caught:
        asyncio.run(collect(io.BytesIO(data), block=64 * 1024, chunk=1 << 20))

    assert caught.value.errors[0].field == "file"
    assert caught.value.errors[0].description == (
        f"line {at + 1}: repeats the header line, as files joined together do: remove it, or"
        " give the files one at a time"
    )


@pytest.mark.parametrize(
    ("data", "note"),
    [
        (b"# exported by X\nx,y\n1.5,a\n", "# exported by X"),
        (b"Report generated 2026-01-01\n\nx,y\n1.5,a\n", "Report generated 2026-01-01"),
        (b"# exported by X\nvalue\n1\n2\n", "# exported by X"),  # one column
    ],
)
def test_a_note_above_the_header_is_named_as_mlops_names_it(data: bytes, note: str) -> None:
    with pytest.raises(ProblemError) as caught:
        asyncio.run(collect(io.BytesIO(data), block=1 << 20, chunk=1 << 20))

    words = f"line 1: {note_above_header(note)}"
    assert caught.value.errors[0].description == words
    assert f"({note!r}): remove the lines above the column names" in words


@pytest.mark.parametrize("data", [b"# of items\n3\n4\n", b"# tag\nred\nblue\n", b"#id\nv\n1\n"])
def test_a_one_column_header_beginning_with_a_hash_is_its_name(data: bytes) -> None:
    pieces = asyncio.run(collect(io.BytesIO(data), block=1 << 20, chunk=1 << 20))

    table = pa.ipc.open_stream(b"".join(pieces)).read_all()
    assert table.column_names == [data.decode().split("\n", 1)[0]]
