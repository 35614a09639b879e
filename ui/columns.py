"""Judge columns before training: which look like identifiers or decorated numbers, and
whether a target looks continuous."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from mlops_client.number_text import Decorated, decorated_numbers

# The service's rule for targets it refuses without allow_many_classes (see the REST spec).
MAX_CLASSES = 50
MANY_CLASSES = 10
MIN_ROWS_PER_CLASS = 5
# Below this many rows every column is all-distinct, so none is flagged as an identifier.
MIN_ROWS_FOR_ID = 20
RULE = (
    "The service refuses such a target unless you allow it: float labels with a fractional "
    f"part, more than {MAX_CLASSES} classes, or {MANY_CLASSES} or more classes with fewer "
    f"than {MIN_ROWS_PER_CLASS} rows per class on average."
)


def id_like(frame: pd.DataFrame) -> list[str]:
    """Name the integer or text columns whose every value is different: likely identifiers."""
    found = []
    for name in frame.columns:
        column = frame[name].dropna()
        if len(column) < MIN_ROWS_FOR_ID or column.nunique() != len(column):
            continue
        if pd.api.types.is_integer_dtype(column) or pd.api.types.is_string_dtype(column):
            found.append(str(name))
        elif pd.api.types.is_float_dtype(column) and bool((column % 1 == 0).all()):
            found.append(str(name))  # integers with gaps read as floats
    return found


def decorated(frame: pd.DataFrame) -> dict[str, Decorated]:
    """The text columns of numbers written with decorations ("$3.50", "12%", "1,234").

    Judged as the service judges them (the same `decorated_numbers`), so these are the
    columns its training refuses unless declared categorical.
    """
    found = {}
    for name in frame.columns:
        column = frame[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
            continue
        try:
            values = pa.chunked_array([pa.array(column, from_pandas=True)])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue  # mixed Python values: not text as the service would read it
        if (said := decorated_numbers(values)) is not None:
            found[str(name)] = said
    return found


def decorated_hint(found: dict[str, Decorated]) -> str:
    """Say which columns training refuses as decorated numbers, and the two ways on."""
    return " ".join(
        f"Column '{name}' holds {said.what}: training refuses it unless you tick it as "
        f"categorical, or {said.fix} in the file to have it read as numbers."
        for name, said in found.items()
    )


def target_problem(frame: pd.DataFrame, target: str) -> str:
    """Say why a target looks continuous or like an identifier, or "" when it looks fine."""
    if target not in frame.columns:
        return ""
    labels = frame[target].dropna()
    classes = labels.nunique()
    if pd.api.types.is_float_dtype(labels) and not bool((labels % 1 == 0).all()):
        return f"Column '{target}' holds numbers with a fractional part: it looks continuous."
    if classes > MAX_CLASSES:
        return f"Column '{target}' has {classes} distinct values: more than {MAX_CLASSES} classes."
    if classes >= MANY_CLASSES and len(labels) / classes < MIN_ROWS_PER_CLASS:
        return (
            f"Column '{target}' has {classes} classes over {len(labels)} rows, "
            f"{len(labels) / classes:.1f} rows per class on average."
        )
    return ""


def features_and_types(
    columns: list[str],
    target: str,
    chosen: list[str],
    as_categorical: list[str],
    as_numeric: list[str],
) -> tuple[list[str], dict[str, str]]:
    """The training request's feature_columns (empty: all) and feature_types (overrides only)."""
    everything = [c for c in columns if c != target]
    features = [c for c in everything if c in chosen]
    types = {c: "categorical" for c in as_categorical if c in features}
    types.update({c: "numeric" for c in as_numeric if c in features})
    return ([] if features == everything else features), types
