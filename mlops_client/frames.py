"""pandas in and out on the single-row hot path; imported only when a DataFrame is passed."""

from __future__ import annotations

import sys
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlops_client.ipc import EOS, has_dictionaries, to_ipc

if TYPE_CHECKING:
    import pandas as pd


def is_frame(data: object) -> bool:
    """Whether `data` is a pandas DataFrame, without importing pandas when nobody else did."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def _column_arrays(frame: pd.DataFrame) -> list[Any]:
    # Under pandas 3, frame[name] builds a Series per column (~15 µs each, most of a one-row
    # predict's budget); the block manager hands out the same arrays without that.
    get = getattr(frame, "_get_column_array", None)
    if get is not None:
        return [get(i) for i in range(frame.shape[1])]
    return [frame.iloc[:, i].array for i in range(frame.shape[1])]


#: What pyarrow raises for a pandas column it cannot convert: an object column of 1 and
#: 'male' (invalid), of an int beyond 64 bits (overflow), a complex one (not implemented).
UNSENDABLE = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


def _is_sparse(dtype: Any) -> bool:
    # pd.get_dummies(sparse=True) makes sparse columns, which Arrow has no type for.
    import pandas as pd

    return isinstance(dtype, pd.SparseDtype)


def _to_arrow(name: str, values: Any) -> pa.Array:
    # pandas' Arrow-backed arrays may hold several chunks, which pa.array() refuses.
    export = getattr(values, "__arrow_array__", None)
    try:
        out = export() if export is not None else pa.array(values, from_pandas=True)
    except UNSENDABLE as error:
        if _is_sparse(values.dtype):
            return _to_arrow(name, values.to_dense())
        raise unsendable(name, values, error) from None
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def unsendable(name: str, values: Any, error: Exception) -> ValueError:
    """Why a DataFrame column cannot be an Arrow column (an object column of 1 and 'male')."""
    if isinstance(error, OverflowError):  # Python's ints have no bound; Arrow's have 64 bits
        big = next((v for v in values if isinstance(v, int) and not -(2**63) <= v < 2**64), None)
        if big is not None:
            return ValueError(
                f"column {name!r} holds a whole number beyond 64 bits ({big}); send such"
                " numbers as text, or as floats"
            )
    if isinstance(error, pa.ArrowNotImplementedError):  # "Unsupported numpy type 15"
        return ValueError(
            f"column {name!r} holds {getattr(values, 'dtype', 'such')} values, which have no"
            " Arrow type; send them as numbers or text"
        )
    kinds = {type(v) for v in values if v is not None and not (isinstance(v, float) and v != v)}
    # pandas' conversion adds which column failed as a second argument; the first says how.
    if len(kinds) > 1:
        return ValueError(f"column {name!r} holds values of more than one type: {error.args[0]}")
    return ValueError(f"column {name!r} cannot be sent as a table's column: {error.args[0]}")


def column_name(label: Hashable) -> str:
    """The name a DataFrame's column label goes by in a table, at training and predicting alike.

    As pyarrow's from_pandas names it, which makes the training table: text as it is, a
    tuple of a MultiIndex as the text of its parts' names ("('penguin', '0')", where str()
    gives "('penguin', 0)"), anything else as its text.
    """
    if isinstance(label, str):
        return label
    if isinstance(label, bytes):
        return label.decode()
    if isinstance(label, tuple):
        return str(tuple(column_name(part) for part in label))
    return str(label)


def frame_table(frame: pd.DataFrame) -> pa.Table:
    """An Arrow table of a DataFrame's columns (not its index), naming a column it cannot take."""
    # from_pandas refuses a name twice listing every column, not which (pd.concat makes them);
    # labels 1 and "1" it takes, and the service would refuse the one name they share.
    seen: set[str] = set()
    for name in map(column_name, frame.columns.tolist()):
        if name in seen:
            raise ValueError(f"column {name!r} appears more than once in the DataFrame")
        seen.add(name)
    if any(map(_is_sparse, frame.dtypes)):
        frame = frame.copy(deep=False)
        for i, values in enumerate(_column_arrays(frame)):
            if _is_sparse(values.dtype):
                frame.isetitem(i, values.to_dense())
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except UNSENDABLE as error:
        for name, values in zip(frame.columns, _column_arrays(frame), strict=True):
            _to_arrow(column_name(name), values)  # raises for the first column at fault
        raise ValueError(f"the DataFrame cannot be sent as a table: {error.args[0]}") from None


def not_a_table(data: object, expected: str) -> TypeError:
    """Why `data` is refused, naming its type by its package: "not polars.DataFrame"."""
    kind = type(data)
    package = kind.__module__.partition(".")[0]
    name = kind.__qualname__ if package == "builtins" else f"{package}.{kind.__qualname__}"
    hint = ""
    if name == "pandas.Series":  # df.iloc[0] or df.loc[label]: one row, as a column
        hint = "; one row of a DataFrame is frame.iloc[[i]], or series.to_frame().T"
    elif isinstance(data, dict):
        hint = "; a row as a dict is pandas.DataFrame([row])"
    return TypeError(f"expected {expected}, not {name}{hint}")


def row_table(row: Mapping[Any, Any]) -> pa.Table:
    """A row given as {column: value} as a one-row table; None is a missing value."""
    names, arrays = [], []
    for label, value in row.items():
        name = column_name(label)
        if not _is_single_value(value):
            raise TypeError(
                f"column {name!r}: a row holds one value per column (a number, text, a boolean"
                f" or None), not {type(value).__name__}; several rows go as a DataFrame or an"
                " Arrow table"
            )
        try:
            arrays.append(pa.array([value]))
        except UNSENDABLE as error:
            raise unsendable(name, [value], error) from None
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _is_single_value(value: object) -> bool:
    # numpy's scalars (a value taken out of a DataFrame) too, without importing numpy.
    return (
        value is None
        or isinstance(value, str | bool | int | float)
        or (type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0)
    )


class FrameCodec:
    """Encode DataFrames as IPC and decode answers, caching each schema by model and columns."""

    def __init__(self) -> None:
        self._schemas: dict[Hashable, tuple[pa.Schema, bytes]] = {}

    def encode(self, key: Hashable, frame: pd.DataFrame) -> bytes:
        """Return an IPC stream of the frame's rows, reusing the schema message seen before."""
        # tolist() first: iterating a pandas Index costs ~1 us a column, a list ~0.1 us.
        names = tuple(map(column_name, frame.columns.tolist()))
        arrays = [_to_arrow(n, a) for n, a in zip(names, _column_arrays(frame), strict=True)]
        cached = self._schemas.get((key, names))
        if cached is None or any(a.type != f.type for a, f in zip(arrays, cached[0], strict=True)):
            schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)])
            cached = (schema, schema.serialize().to_pybytes())
            if len(self._schemas) > 256:
                self._schemas.clear()
            self._schemas[(key, names)] = cached
        schema, schema_message = cached
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        if has_dictionaries(schema):
            return to_ipc(batch)
        body: bytes = batch.serialize().to_pybytes()
        return schema_message + body + EOS

    @staticmethod
    def decode(table: pa.Table, like: pd.DataFrame) -> pd.DataFrame:
        """Return predictions as a DataFrame indexed like the input rows."""
        import pandas as pd

        columns = {
            name: column.to_numpy(zero_copy_only=False)
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
        return pd.DataFrame(columns, index=like.index, copy=False)
