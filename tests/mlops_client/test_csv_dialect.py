"""A CSV's separator and decimal mark, found from its first lines."""

from __future__ import annotations

import pytest

from mlops_client.csv_dialect import COMMAS, Dialect, sniff


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
