"""The input tensors of an infer request, checked against the signature and read into numpy.

The per-input half of ``tensors.decode_request``, apart so that each module stays readable.
It runs once per input on every request, and one input per column is common, so the checks
are plain code without generators, and the work on element data happens in C: numpy
converts, and the one pass over the elements, ``set(map(type, data))``, runs in the
interpreter's C loop. That pass is what refuses booleans, strings ("NaN") and nulls in
numeric tensors, which numpy would otherwise convert silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from threadline.domain import errors
from threadline.domain.models import TensorSpec
from threadline.serving import _binary

DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(dtype) for name, dtype in (
        ("BOOL", np.bool_), ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32),
        ("UINT64", np.uint64), ("INT8", np.int8), ("INT16", np.int16), ("INT32", np.int32),
        ("INT64", np.int64), ("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64),
        ("BYTES", np.object_),
    )
}

_ACCEPTS: dict[str, tuple[frozenset[type], str]] = {
    "BOOL": (frozenset({bool}), "JSON booleans"),
    "BYTES": (frozenset({str}), "JSON strings"),
    **{name: (frozenset({int}), "JSON integers") for name in DTYPES if "INT" in name},
    **{name: (frozenset({int, float}), "JSON numbers (NaN and infinities cannot be sent)")
       for name in ("FP16", "FP32", "FP64")},
}
_JSON_NAMES = {bool: "a boolean", int: "an integer", float: "a number with a fraction or exponent",
               str: "a string", type(None): "null", dict: "an object", list: "an array"}
# How _convert reads each datatype once the JSON types are right. Narrower integers are read
# as int64 and range-checked, because numpy 1.x wraps out-of-range values instead of refusing.
_EXACT = frozenset({"BOOL", "BYTES", "FP64"})
_OVERFLOWING_FLOATS = frozenset({"FP16", "FP32"})
_NARROW_INTS = frozenset({"UINT8", "UINT16", "UINT32", "INT8", "INT16", "INT32"})


def read(entries: list[Any], inputs: Sequence[TensorSpec], max_rows: int,
         binary: memoryview | None) -> tuple[dict[str, np.ndarray], int]:
    """One array per signature input, and the batch size (rows) that they all share.

    ``binary`` is the part of the body after the JSON header when the client uses the binary
    tensor data extension (``_binary``), else None.
    """
    specs = {spec.name: spec for spec in inputs}
    tensors: dict[str, np.ndarray] = {}
    rows = offset = 0
    for position, entry in enumerate(entries):
        spec, shape, data, size = _header(entry, position, specs)
        if spec.name in tensors:
            raise errors.InvalidInput("is given more than once", field=_field(spec.name))
        rows = rows or _check_rows(spec.name, shape, max_rows)
        if shape[0] != rows:
            raise errors.InvalidInput(
                f"has {shape[0]} rows (shape {list(shape)}), the inputs before it have {rows}: "
                "every input must share the first (batch) dimension", field=_field(spec.name))
        if size is None:
            tensors[spec.name] = _array(spec.name, spec.datatype, shape, data)
        else:
            chunk = _binary.take(binary, offset, size, _field(spec.name))
            tensors[spec.name] = _binary.unpack(chunk, DTYPES[spec.datatype], shape,
                                                _field(spec.name))
            offset += size
    if len(tensors) != len(specs):
        missing = ", ".join(name for name in specs if name not in tensors)
        raise errors.InvalidInput(f"missing inputs: {missing}; this model takes: {', '.join(specs)}")
    if binary is not None and offset != len(binary):
        raise errors.InvalidInput(f"the binary data after the JSON header is {len(binary)} bytes, "
                                  f"but the inputs' binary_data_size add up to {offset}")
    return tensors, rows


def json_object(value: Any, field: str) -> dict[str, Any]:
    """An optional ``parameters`` member: absent is empty, anything but an object is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.InvalidInput("must be a JSON object", field=field)
    return value


def show(value: Any) -> str:
    """A value received over the wire, cut short enough to quote in a message."""
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _header(entry: Any, position: int, specs: Mapping[str, TensorSpec],
            ) -> tuple[TensorSpec, tuple[int, ...], list[Any], int | None]:
    """The input's spec and shape, and either its JSON data or its binary_data_size."""
    if not isinstance(entry, dict):
        raise errors.InvalidInput("must be an object with name, datatype, shape and data",
                                  field=f"inputs[{position}]")
    name = entry.get("name")
    if not isinstance(name, str):
        raise errors.InvalidInput("name: required, a string", field=f"inputs[{position}]")
    spec = specs.get(name)
    if spec is None:
        raise errors.InvalidInput(f"unknown input {show(name)}; this model takes: "
                                  f"{', '.join(specs) or 'no declared inputs'}")
    if entry.get("datatype") != spec.datatype:
        raise errors.InvalidInput(f"datatype is {show(entry.get('datatype'))}, expected "
                                  f"{spec.datatype}", field=_field(name))
    shape = _shape(name, entry.get("shape"), spec.shape)
    parameters = entry.get("parameters")
    size = None if parameters is None else \
        json_object(parameters, f"{_field(name)}: parameters").get("binary_data_size")
    data = entry.get("data")
    if size is None and not isinstance(data, list):
        raise errors.InvalidInput("data: required, a flat or nested list", field=_field(name))
    if size is not None and (type(size) is not int or size < 0 or data is not None):
        raise errors.InvalidInput("binary_data_size must be a non-negative integer, and then "
                                  "data must be absent", field=_field(name))
    return spec, shape, data, size


def _shape(name: str, value: Any, declared: tuple[int, ...]) -> tuple[int, ...]:
    if type(value) is list and len(value) == 1 == len(declared):
        got = value[0]
        if type(got) is int and got >= 0 and declared[0] in (-1, got):
            return (got,)
    elif type(value) is list and len(value) == len(declared) and value:
        for got, want in zip(value, declared):
            if type(got) is not int or got < 0 or (want >= 0 and got != want):
                break
        else:
            return tuple(value)
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        message = f"shape must be a list of non-negative integers, not {show(value)}"
    elif not value:
        message = "shape [] has no batch dimension"
    else:
        message = f"shape {value} does not match the signature's {list(declared)} (-1 = any size)"
    raise errors.InvalidInput(message, field=_field(name))


def _check_rows(name: str, shape: tuple[int, ...], max_rows: int) -> int:
    if shape[0] == 0:
        raise errors.InvalidInput(f"empty batch: input {name!r} has shape {list(shape)}")
    if shape[0] > max_rows:
        raise errors.InvalidInput(f"has {shape[0]} rows; at most {max_rows} are accepted per "
                                  "request", field=_field(name))
    return shape[0]


def _array(name: str, datatype: str, shape: tuple[int, ...], data: list[Any]) -> np.ndarray:
    types = set(map(type, data))
    if list in types:
        data = _flatten(name, data, shape)
        types = set(map(type, data))
    elif len(data) != math.prod(shape):
        raise errors.InvalidInput(f"data holds {len(data)} values, shape {list(shape)} needs "
                                  f"{math.prod(shape)}", field=_field(name))
    accepted, wanted = _ACCEPTS[datatype]
    if not types <= accepted:
        found = ", ".join(sorted(_JSON_NAMES.get(t, t.__name__) for t in types - accepted))
        raise errors.InvalidInput(f"data for {datatype} must be {wanted}; found {found}",
                                  field=_field(name))
    array = _convert(name, datatype, data)
    return array.reshape(shape) if len(shape) > 1 else array


def _flatten(name: str, data: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Nested data, checked to be rectangular and shaped like ``shape``, in row-major order."""
    try:
        grid = np.array(data, dtype=object)
    except ValueError:  # nested deeper than numpy's dimension limit
        grid = None
    if grid is None or grid.shape != shape:
        raise errors.InvalidInput(f"nested data must be rectangular, one list level per "
                                  f"dimension of shape {list(shape)}", field=_field(name))
    return grid.ravel().tolist()  # type: ignore[no-any-return]


def _convert(name: str, datatype: str, data: list[Any]) -> np.ndarray:
    dtype = DTYPES[datatype]
    if datatype in _EXACT:
        return np.array(data, dtype=dtype)
    if datatype in _OVERFLOWING_FLOATS:
        with np.errstate(over="ignore"):
            array = np.array(data, dtype=dtype)
        if not np.isfinite(array).all():
            raise errors.InvalidInput(f"a value is too large for {datatype}", field=_field(name))
        return array
    narrow = datatype in _NARROW_INTS
    try:
        array = np.array(data, dtype=np.int64 if narrow else dtype)
    except OverflowError:
        array = None
    info = np.iinfo(dtype)
    if array is None or (narrow and array.size
                         and (array.min() < info.min or array.max() > info.max)):
        raise errors.InvalidInput(f"a value is out of range for {datatype} "
                                  f"({info.min} to {info.max})", field=_field(name))
    return array.astype(dtype, copy=False)


def _field(name: str) -> str:
    return f"input {name!r}"
