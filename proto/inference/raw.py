"""The protocol's raw tensor encoding, used by raw_*_contents and HTTP binary data.

Fixed-size elements are packed little-endian in row-major order. BYTES elements each come
after a 4-byte little-endian length. Both the service and the gateway read and write it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Element types of fixed size, and how numpy reads them.
DTYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


_LENGTH = struct.Struct("<I")


class RawError(ValueError):
    """Raw contents that do not hold what their tensor says."""


def check_integers(datatype: str, values: npt.NDArray[np.integer[Any]] | Sequence[Any]) -> None:
    """Raise RawError naming the first of `values` an integer `datatype` cannot hold.

    That is a fraction or a number outside the datatype's range. Numbers arrive wider than
    their datatype: as JSON, or in a typed contents field 32 bits wide holding INT8s.
    """
    limits = np.iinfo(DTYPES[datatype])
    if isinstance(values, np.ndarray):
        outside = (values < limits.min) | (values > limits.max)
        if not outside.any():
            return
        values = [values[outside.argmax()].item()]
    for value in values:
        if isinstance(value, float) and not value.is_integer():
            raise RawError(f"{datatype} data must be whole numbers, not {value}")
        if not limits.min <= value <= limits.max:
            raise RawError(f"{value} is outside {datatype}'s range, {limits.min} to {limits.max}")


def check_bools(values: npt.NDArray[np.uint8] | Sequence[Any]) -> None:
    """Raise RawError naming the first of `values` that is neither 0 nor 1.

    A BOOL is one byte, 1 for true and 0 for false; any other byte, or JSON number, would
    otherwise be read as true.
    """
    if isinstance(values, np.ndarray):
        stray = values > 1
        if not stray.any():
            return
        values = [values[stray.argmax()].item()]
    for value in values:
        if value not in (0, 1):
            raise RawError(f"BOOL values are 0 (false) or 1 (true), not {value}")


def split_bytes(data: bytes, count: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Split `count` length-prefixed BYTES elements into Arrow-style offsets and values.

    Raises RawError when the elements do not exactly fill `data`.
    """
    # Each element's start depends on the one before, so one Python step per element finds
    # them; the bytes themselves move in one numpy step.
    _check_room(data, count)
    read = _LENGTH.unpack_from
    starts = np.empty(count, np.int64)
    position, end = 0, len(data)
    try:
        for index in range(count):
            starts[index] = position
            position += 4 + read(data, position)[0]
    except struct.error:
        raise RawError(f"holds fewer than {count} length-prefixed elements") from None
    _check_end(position, end, count)
    buffer = np.frombuffer(data, np.uint8)
    keep = np.ones(end, bool)
    keep[(starts[:, None] + np.arange(4)).ravel()] = False
    values = buffer[keep]
    lengths = np.diff(np.append(starts, end)) - 4
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, values


def decode_bytes(data: bytes, count: int) -> list[bytes]:
    """Split `count` length-prefixed BYTES elements into a list (for small tensors)."""
    _check_room(data, count)
    read = _LENGTH.unpack_from
    out: list[bytes] = []
    position, end = 0, len(data)
    try:
        for _ in range(count):
            size = read(data, position)[0]
            out.append(data[position + 4 : position + 4 + size])
            position += 4 + size
    except struct.error:
        raise RawError(f"holds fewer than {count} length-prefixed elements") from None
    _check_end(position, end, count)
    return out


def _check_room(data: bytes, count: int) -> None:
    # A shape is the sender's word: 2**62 elements in a few bytes must not size an array.
    if count * _LENGTH.size > len(data):
        raise RawError(f"holds fewer than {count} length-prefixed elements")


def _check_end(position: int, end: int, count: int) -> None:
    if position > end:
        raise RawError(f"its {count} length-prefixed elements run past the end of the contents")
    if position < end:
        raise RawError(f"holds {end - position} bytes after its {count} length-prefixed elements")


def encode_bytes(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> bytes:
    """Length-prefix variable-size elements given as Arrow-style offsets into `data`."""
    lengths = np.diff(offsets).astype("<u4")
    count = len(lengths)
    out = np.empty(4 * count + len(data), np.uint8)
    starts = offsets[:-1] - offsets[0] + 4 * np.arange(count)
    for byte in range(4):
        out[starts + byte] = (lengths >> (8 * byte)) & 0xFF
    element = np.repeat(np.arange(count), lengths)
    out[np.arange(len(data)) + 4 * (element + 1)] = data
    return out.tobytes()


def encode_texts(values: Sequence[bytes]) -> bytes:
    """Length-prefix a few BYTES elements (small tensors: no numpy set-up)."""
    return b"".join(len(v).to_bytes(4, "little") + v for v in values)
