"""The protocol's raw tensor encoding, used by raw_*_contents and HTTP binary data.

Fixed-size elements are packed little-endian in row-major order. BYTES elements each come
after a 4-byte little-endian length. Both the service and the gateway read and write it.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


class RawError(ValueError):
    """Raw contents that do not hold what their tensor says."""


def decode_bytes(data: bytes, count: int) -> list[bytes]:
    """Split `count` length-prefixed BYTES elements; raise RawError if they do not fit."""
    view = memoryview(data)
    out: list[bytes] = []
    position, end = 0, len(data)
    for _ in range(count):
        if position + 4 > end:
            raise RawError(f"holds fewer than {count} length-prefixed elements")
        size = int.from_bytes(view[position : position + 4], "little")
        position += 4
        if position + size > end:
            raise RawError(f"an element's length ({size}) runs past the end of the contents")
        out.append(bytes(view[position : position + size]))
        position += size
    if position != end:
        raise RawError(f"holds {end - position} bytes after its {count} elements")
    return out


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
