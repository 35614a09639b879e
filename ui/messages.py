"""Say what went wrong in a person's words: columns by name, rows by number, no wire paths."""

from __future__ import annotations

import re

import pandas as pd

# Field paths of the wire format: "batches[0].columns.body_mass_g", "rows.age", "columns.x".
_FIELD = re.compile(r"(?:batches\[\d+\]\.)?(?:columns|rows)\.([^\s:]+)")
_LEADING_FIELD = re.compile(r"(?:^|(?<=\s))(?:batches\[\d+\]\.)?(?:columns|rows)\.([^\s:]+): ")
_MUST_BE_NUMBERS = re.compile(r"column '([^']+)' must hold numbers")
_HYPERPARAMETER = re.compile(r"\bhyperparameters\.(\w+)")


def _leading(match: re.Match[str]) -> str:
    name = match[1]
    # "columns.x: column 'x' ..." names the column twice; keep the sentence's own wording.
    rest = match.string[match.end() :]
    return "" if rest.startswith(f"column '{name}'") else f"column '{name}': "


def plain(text: str) -> str:
    """Rewrite the service's field paths as plain words."""
    text = _LEADING_FIELD.sub(_leading, text)
    text = _FIELD.sub(lambda m: f"column '{m[1]}'", text)
    return _HYPERPARAMETER.sub(lambda m: f"setting '{m[1]}'", text)


def first_bad_number(rows: pd.DataFrame, column: str) -> tuple[int, str] | None:
    """Return the first row (1-based, as the table shows it) whose value is not a number."""
    if column not in rows.columns:
        return None
    for position, value in enumerate(rows[column].tolist(), start=1):
        if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return position, str(value)
    return None


def explain(text: str, rows: pd.DataFrame | None = None) -> str:
    """Plain words for a refusal; with the rows sent, name the first row a column failed on."""
    words = plain(text)
    found = _MUST_BE_NUMBERS.search(words)
    if rows is not None and found:
        bad = first_bad_number(rows, found[1])
        if bad is not None:
            words = words.rstrip(" .…") + (
                f". The first bad row is row {bad[0]}: '{bad[1]}' in column '{found[1]}' "
                "is not a number."
            )
    return words
