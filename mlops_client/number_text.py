"""Text columns of numbers written with decorations: thousands separators, %, currency, (12.00).

Shared by the service, which refuses such a column unless declared categorical, and the web
UI, which offers it as categorical and says why before the file is sent (the UI imports no
ml_service code).

Neither Arrow nor pandas reads "1,234", "12%", "$3.50" or "(12.00)" as a number, so such a
column arrives as text and would train as a category of each distinct amount. Nothing here
converts it (a user's "12%" may be a code): `decorated_numbers` says what the column holds,
and the training checks refuse it unless the request declares it categorical.

Phone numbers and ids written in groups ("123 456 789", "12.345.678", "192.168.100.200") look
like numbers with thousands separators, but every value has the same shape of digit groups,
where amounts vary in magnitude: such a column is text, a category of each value, not refused.

Cheap on large uploads: a column is looked at in full only when evenly spaced rows of it
mostly look like numbers, some decorated; then by vectorised regular expressions (Arrow's
RE2) over its rows and its distinct numbers, never row by row in Python. On 1M rows: about
2 ms for a column of categories or ids, about 0.5 s for a column of "$1,234.56" refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Refused only when at least this share of the non-missing values look like numbers ...
SHARE = 0.95
#: ... among at least this many distinct ones, one of them or more decorated.
MIN_DISTINCT = 5
#: Evenly spaced rows looked at first: a column few of which look like numbers stops there.
SAMPLE_ROWS = 1000

_SYMBOLS = "$€£¥₹₽₩₪₺₫฿₴₦₱¢"
_CODES = (
    "USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|CNY|RMB|HKD|SGD|SEK|NOK|DKK|PLN|CZK|HUF|RUB|INR|BRL|"
    "MXN|ZAR|KRW|TRY|ILS|kr|zł|Rs"
)
_CURRENCY = rf"(?:[A-Z]{{1,2}}\$|[{_SYMBOLS}]|{_CODES})"
_GROUP = r"[ \x{a0}\x{202f}\x{2009}']"  # space, no-break spaces, thin space, Swiss apostrophe
# Grouped digits: 1,234.5 or 1.234,5 or 1 234,5; the first group never starts with 0.
_GROUPED = (
    rf"[1-9]\d{{0,2}}(?:(?:,\d{{3}})+(?:\.\d*)?|(?:\.\d{{3}})+(?:,\d*)?|(?:{_GROUP}\d{{3}})+"
    r"(?:[.,]\d*)?)"
)
_PLAIN = r"(?:\d+(?:[.,]\d*)?(?:[eE][-+]?\d+)?|[.,]\d+)"
# Units of measure after a number ("12 kg", "3.5km", "20 °C"): weight, length, volume,
# temperature, time, energy, data, speed; single letters that name other things too (A, B,
# K, h, s, t: grades, sizes, "4K") are left out.
_UNIT = (
    r"(?:kg|mg|g|lbs|lb|oz|km/h|km|cm|mm|mi|m|ft|yd|ml|mL|l|L|°C|°F|kWh|kW|W|KB|kB|MB|GB|TB|"
    r"ms|sec|min|hours|hour|hrs|hr|days|day|years|year|yrs|mph|px)"
)
_SIGN = r"(?:[-+\x{2212}]\s*)?"
_BODY = rf"{_SIGN}(?:{_CURRENCY}\s*)?{_SIGN}(?:{_GROUPED}|{_PLAIN})\s*(?:%|{_CURRENCY}|{_UNIT})?"
#: A number, plain or decorated: "12", "1,234", "$3.50", "12.5 %", "(12.00)", "3.50 USD",
#: "12 kg".
NUMBER = rf"^\s*(?:{_BODY}|\(\s*{_BODY}\s*\))\s*$"

#: Digits in three groups or more parted by plain spaces or dots, the first group of 1-3 digits
#: and the others of 3, nothing else but a leading '+': how phone numbers, national ids and
#: addresses are written ("123 456 789", "12.345.678", "192.168.100.200"). Commas, no-break
#: and thin spaces and apostrophes are left out: they part the thousands of amounts only.
_ID_SHAPE = r"^\+?\d{1,3}(?:[ .]\d{3}){2,}$"

#: Each decoration: the words naming it, the fix, and how to tell it in a number.
_DECORATIONS = (
    ("a currency sign", "remove the signs", _CURRENCY),
    ("a percent sign", "remove the signs", "%"),
    ("a unit", "remove the units", rf"\d\s*{_UNIT}\s*\)?\s*$"),
    ("negatives in parentheses", "write negatives with a minus sign", r"^\s*\("),
    (
        "thousands separators",
        "remove the separators",
        rf"\d(?:,\d{{3}})+(?:[^\d,]|$)|\d(?:\.\d{{3}}){{2,}}|\d\.\d{{3}},|\d{_GROUP}\d{{3}}",
    ),
    ("decimal commas", "use decimal points", r"\d,(?:\d{1,2}|\d{4,})(?:\D|$)"),
)


@dataclass(frozen=True)
class Decorated:
    """What a text column of decorated numbers holds: its decorations and one example."""

    decorations: tuple[str, ...]
    fixes: tuple[str, ...]
    example: str

    @property
    def what(self) -> str:
        """What the column holds: "numbers written with a currency sign ('$3.50')"."""
        return f"numbers written with {_joined(self.decorations)} ('{self.example}')"

    @property
    def fix(self) -> str:
        """How to make it numbers: "remove the signs"."""
        return _joined(_merged(self.fixes))

    def problem(self, name: str) -> str:
        """Why the column is refused, and the two ways on."""
        return (
            f"column '{name}' holds {self.what}: {self.fix} so it is read as numbers, "
            "or declare it categorical (feature_types) to train on each value as a category"
        )


def is_text(arrow_type: pa.DataType) -> bool:
    """Whether a column's values are text (plain, or a dictionary of text)."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def decorated_numbers(column: pa.ChunkedArray) -> Decorated | None:
    """Say how a text column's numbers are decorated, or None if it is not such a column.

    Such a column: at least SHARE of its non-missing values look like numbers, at least
    MIN_DISTINCT distinct ones, and some of them are decorated (plain digits are left be:
    text on purpose, as zero-padded codes are; so are numbers all in one shape of three digit
    groups or more parted by spaces or dots, as phone numbers and ids are). Evenly spaced rows
    are looked at first: most of them must look like numbers, one decorated, for the whole
    column to be looked at.
    """
    if not is_text(column.type) or len(column) == column.null_count:
        return None
    sample = _sample(column)
    if not _may_hold_decorated_numbers(sample):
        return None
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    numbers = pc.match_substring_regex(column, NUMBER)
    present = len(column) - column.null_count
    if int(pc.sum(numbers).as_py() or 0) < SHARE * present:
        return None
    distinct = pc.unique(pc.filter(column, numbers))
    if len(distinct) < MIN_DISTINCT:
        return None
    return _decorations(distinct)


def _decorations(numbers: pa.Array) -> Decorated | None:
    """The decorations of distinct numbers, the first decorated one as the example."""
    if _identifiers(numbers):
        return None
    found = [
        (words, fix, pc.match_substring_regex(numbers, pattern))
        for words, fix, pattern in _DECORATIONS
    ]
    found = [(words, fix, hits) for words, fix, hits in found if pc.any(hits).as_py()]
    if not found:
        return None
    # The first value showing every decoration named, else the first showing the first one.
    every = functools.reduce(pc.and_, [hits for _, _, hits in found])
    example = numbers.filter(every if pc.any(every).as_py() else found[0][2])[0].as_py()
    return Decorated(
        tuple(words for words, _, _ in found), tuple(fix for _, fix, _ in found), example
    )


def _identifiers(numbers: pa.Array) -> bool:
    """Whether numbers are all written in one shape of three digit groups or more."""
    # Amounts in a column vary in magnitude, so their digit groups vary in number and width;
    # phone numbers and ids are written to one pattern. The first value rules most columns out.
    if len(numbers) == 0 or not re.match(_ID_SHAPE, str(numbers[0].as_py()).strip()):
        return False
    shapes = pc.replace_substring_regex(pc.utf8_trim_whitespace(numbers), r"\d", "0")
    return bool(pc.count_distinct(shapes).as_py() == 1)


def _sample(column: pa.ChunkedArray) -> pa.Array:
    """Up to SAMPLE_ROWS evenly spaced non-missing values, as plain text."""
    rows = len(column)
    picked = (
        column
        if rows <= SAMPLE_ROWS
        else column.take(
            pa.array(np.unique(np.linspace(0, rows - 1, SAMPLE_ROWS).astype(np.int64)))
        )
    )
    if isinstance(picked, pa.ChunkedArray):
        picked = picked.combine_chunks()
    if pa.types.is_dictionary(picked.type):
        picked = picked.dictionary_decode()
    return picked.drop_null()


def _may_hold_decorated_numbers(sample: pa.Array) -> bool:
    if len(sample) == 0:
        return True  # nearly all missing: the whole column is looked at (its few values)
    numbers = pc.filter(sample, pc.match_substring_regex(sample, NUMBER))
    # Half, not SHARE: rows of a sorted column cluster, and a sample must not hide one.
    return len(numbers) >= len(sample) / 2 and _decorations(numbers) is not None


def _merged(fixes: tuple[str, ...]) -> list[str]:
    """Join the removals: "remove the signs" and "remove the separators" are said as one."""
    removed = [fix.removeprefix("remove the ") for fix in fixes if fix.startswith("remove the ")]
    merged = [f"remove the {' and '.join(dict.fromkeys(removed))}"] if removed else []
    return merged + [fix for fix in fixes if not fix.startswith("remove the ")]


def _joined(words: tuple[str, ...] | list[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
