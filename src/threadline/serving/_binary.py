"""Triton's binary tensor data extension: raw tensors in the body after the JSON header.

tritonclient sends inputs this way by default (``set_data_from_numpy(binary_data=True)``), so
supporting it is what lets existing clients work unchanged. The HTTP header
``Inference-Header-Content-Length`` says where the JSON ends; each input with a
``binary_data_size`` parameter takes that many bytes, in the order the inputs are listed.
Numbers are little-endian and row-major, a BOOL is one byte 0 or 1, and a BYTES element is a
4-byte little-endian length followed by that many bytes (read here as UTF-8 text, like the
strings of the JSON form). Numeric tensors are views on the body: no copy, no Python loop.
Unlike JSON, binary data can carry NaN and infinities, and they are kept. Outputs asked for
with ``"parameters": {"binary_data": true}`` (or the request's ``binary_data_output``) are
returned the same way (``pack``), after a JSON header whose length the response's
``Inference-Header-Content-Length`` header gives.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from threadline.domain import errors

HEADER = "Inference-Header-Content-Length"


def split(body: bytes, header_length: str) -> tuple[memoryview, memoryview]:
    """The JSON header and the binary part of a body, cut where the HTTP header says."""
    length = int(header_length) if header_length.isdigit() else -1
    if not 0 < length <= len(body):
        raise errors.InvalidInput(f"must be the byte length of the JSON header, at most the "
                                  f"{len(body)} bytes of the body, not {header_length[:32]!r}",
                                  field=HEADER)
    view = memoryview(body)
    return view[:length], view[length:]


def take(binary: memoryview | None, offset: int, size: int, field: str) -> memoryview:
    """The ``size`` bytes of one input, starting where the inputs before it ended."""
    if binary is None:
        raise errors.InvalidInput(f"has binary_data_size, but the request has no {HEADER} "
                                  "header to say where the binary data starts", field=field)
    if offset + size > len(binary):
        raise errors.InvalidInput(f"binary_data_size {size} runs past the end of the binary data "
                                  f"({len(binary) - offset} bytes left)", field=field)
    return binary[offset:offset + size]


def unpack(chunk: memoryview, dtype: np.dtype[Any], shape: tuple[int, ...], field: str,
           ) -> np.ndarray:
    """One input's bytes as an array of ``dtype`` (object, of str, for BYTES) and ``shape``."""
    count = math.prod(shape)
    if dtype.kind == "O":
        return np.array(_strings(chunk, count, field), dtype=object).reshape(shape)
    if len(chunk) != count * dtype.itemsize:
        raise errors.InvalidInput(f"binary_data_size is {len(chunk)} bytes; shape {list(shape)} "
                                  f"needs {count * dtype.itemsize}", field=field)
    array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).reshape(shape)
    if dtype.kind == "b" and array.view(np.uint8).max(initial=0) > 1:
        raise errors.InvalidInput("binary BOOL data must be bytes 0 or 1", field=field)
    return array.astype(dtype, copy=False)  # a no-op on little-endian machines


def pack(array: np.ndarray) -> bytes:
    """An output tensor as raw bytes: the inverse of ``unpack`` (row-major, little-endian)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.dtype.kind in "OUS":
        parts = []
        for value in flat.tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    if flat.dtype.kind == "b":
        return flat.astype(np.uint8).tobytes()
    return flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()


def _strings(chunk: memoryview, count: int, field: str) -> list[str]:
    raw = chunk.tobytes()
    values: list[str] = []
    offset = 0
    while len(values) < count and offset + 4 <= len(raw):  # each element needs 4 length bytes
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4 + length
        try:
            values.append(raw[offset - length:offset].decode("utf-8"))
        except UnicodeDecodeError:
            raise errors.InvalidInput(f"binary BYTES element {len(values)} is not UTF-8 text",
                                      field=field) from None
    if len(values) != count or offset != len(raw):
        raise errors.InvalidInput(f"binary BYTES data must be {count} length-prefixed elements "
                                  "filling binary_data_size exactly", field=field)
    return values
