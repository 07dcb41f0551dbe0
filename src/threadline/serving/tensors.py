"""Open Inference Protocol v2 (KServe v2 / Triton HTTP) JSON bodies to numpy and back.

Every inference request passes through here, so the work on element data happens in C:
orjson parses and writes, numpy converts, and the one check over the elements,
``set(map(type, data))``, runs inside the interpreter's C loop. A tensor is checked against
the version's signature before the model sees it, and refused with a message that names the
input and says what is wrong: it becomes the HTTP 400 body.

JSON has no NaN or infinities. Requests cannot send them (a string or null where a number
belongs is refused, and so is a finite number that overflows FP16/FP32), and NaN or ±inf in
an output is written as ``null``, which is what orjson does with non-finite floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import orjson

from threadline.domain import errors
from threadline.domain.models import TensorSpec

_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(dtype) for name, dtype in (
        ("BOOL", np.bool_), ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32),
        ("UINT64", np.uint64), ("INT8", np.int8), ("INT16", np.int16), ("INT32", np.int32),
        ("INT64", np.int64), ("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64),
        ("BYTES", np.object_),
    )
}
_DATATYPES = {dtype: name for name, dtype in _DTYPES.items() if name != "BYTES"}

_NUMBERS = frozenset({int, float})
_ACCEPTS: dict[str, tuple[frozenset[type], str]] = {
    "BOOL": (frozenset({bool}), "JSON booleans"),
    "BYTES": (frozenset({str}), "JSON strings"),
    **{name: (frozenset({int}), "JSON integers") for name in _DTYPES if "INT" in name},
    **{name: (_NUMBERS, "JSON numbers (NaN and infinities cannot be sent)")
       for name in ("FP16", "FP32", "FP64")},
}
_JSON_NAMES = {bool: "a boolean", int: "an integer", float: "a number with a fraction or exponent",
               str: "a string", type(None): "null", dict: "an object", list: "an array"}
# How _convert reads each datatype once the JSON types are known to be right. Narrower
# integers are read as int64 and range-checked because numpy 1.x wraps out-of-range values.
_EXACT = frozenset({"BOOL", "BYTES", "FP64"})
_OVERFLOWING_FLOATS = frozenset({"FP16", "FP32"})
_NARROW_INTS = frozenset({"UINT8", "UINT16", "UINT32", "INT8", "INT16", "INT32"})


@dataclass(frozen=True)
class Request:
    """A decoded inference request: one array per signature input, all with ``rows`` rows."""

    id: str | None
    tensors: dict[str, np.ndarray]
    rows: int
    parameters: dict[str, Any]
    requested_outputs: tuple[str, ...] | None  # None: every output the model declares


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a protocol datatype; BYTES are object arrays of str."""
    try:
        return _DTYPES[datatype]
    except KeyError:
        raise errors.InvalidInput(
            f"unknown datatype {_show(datatype)}; expected one of {', '.join(_DTYPES)}") from None


def datatype_of(dtype: npt.DTypeLike) -> str:
    """The protocol datatype of a numpy dtype: object and string arrays are BYTES."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return "BYTES"
    try:
        return _DATATYPES[dtype]
    except KeyError:
        raise errors.InvalidInput(
            f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


def decode_request(body: bytes, inputs: Sequence[TensorSpec], *, max_rows: int = 65536) -> Request:
    """Parse and check an infer request against the version's input signature."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise errors.InvalidInput("request body must be a JSON object")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise errors.InvalidInput("must be a string", field="id")
    entries = document.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise errors.InvalidInput("required: a non-empty list of input tensors", field="inputs")
    specs = {spec.name: spec for spec in inputs}
    tensors: dict[str, np.ndarray] = {}
    rows = 0
    for position, entry in enumerate(entries):
        spec, shape, data = _header(entry, position, specs)
        if spec.name in tensors:
            raise errors.InvalidInput("is given more than once", field=_field(spec.name))
        rows = rows or _check_rows(spec.name, shape, max_rows)
        if shape[0] != rows:
            raise errors.InvalidInput(
                f"has {shape[0]} rows (shape {list(shape)}), the inputs before it have {rows}: "
                "every input must share the first (batch) dimension", field=_field(spec.name))
        tensors[spec.name] = _array(spec.name, spec.datatype, shape, data)
    if len(tensors) != len(specs):
        missing = ", ".join(name for name in specs if name not in tensors)
        raise errors.InvalidInput(f"missing inputs: {missing}; this model takes: {', '.join(specs)}")
    return Request(request_id, tensors, rows, _object(document.get("parameters"), "parameters"),
                   _requested_outputs(document.get("outputs")))


def select_outputs(specs: Sequence[TensorSpec], requested: tuple[str, ...] | None,
                   ) -> tuple[TensorSpec, ...]:
    """The output specs a request asked for, in its order; run this before the model does."""
    if requested is None:
        return tuple(specs)
    by_name = {spec.name: spec for spec in specs}
    unknown = [name for name in requested if name not in by_name]
    if unknown:
        raise errors.InvalidInput(f"unknown output {_show(unknown[0])}; this model returns: "
                                  f"{', '.join(by_name) or 'no declared outputs'}", field="outputs")
    return tuple(by_name[name] for name in requested)


def encode_response(model_name: str, model_version: str, request_id: str,
                    outputs: Mapping[str, np.ndarray], specs: Sequence[TensorSpec],
                    parameters: dict[str, Any] | None = None) -> bytes:
    """The response body: ``specs`` choose the outputs and their order (all, if empty).

    The caller passes the id, generating one (uuid4 hex) when the request had none, because the
    same id also keys the prediction log and the trace. Datatypes follow the arrays' dtypes.
    """
    names = [spec.name for spec in specs] if specs else list(outputs)
    tensors = []
    for name in names:
        array = outputs.get(name)
        if array is None:  # the model broke its own signature: a server error, not the caller's
            raise errors.ThreadlineError(f"model {model_name} returned no output {name!r}")
        tensors.append(_output(name, np.asarray(array)))
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version,
                                "id": request_id}
    if parameters is not None:
        document["parameters"] = parameters
    document["outputs"] = tensors
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def model_metadata(name: str, versions: Sequence[str], platform: str,
                   inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> dict[str, Any]:
    """The body of ``GET /v2/models/{name}``."""
    return {"name": name, "versions": list(versions), "platform": platform,
            "inputs": [_spec(spec) for spec in inputs], "outputs": [_spec(spec) for spec in outputs]}


def concat_rows(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack requests of one signature into a batch along axis 0 (dtypes are already equal)."""
    if len(parts) <= 1:
        return dict(parts[0]) if parts else {}
    names = parts[0].keys()
    if any(part.keys() != names for part in parts):
        raise errors.ThreadlineError("cannot batch requests that carry different tensors")
    return {name: np.concatenate([part[name] for part in parts]) for name in names}


def split_rows(outputs: Mapping[str, np.ndarray], counts: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Cut a batch's outputs back into per-request pieces of ``counts`` rows (views, no copy)."""
    total = sum(counts)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise errors.ThreadlineError(f"output {name!r} has shape {list(array.shape)}, but the "
                                         f"batch has {total} rows")
    pieces: list[dict[str, np.ndarray]] = []
    start = 0
    for count in counts:
        pieces.append({name: array[start:start + count] for name, array in outputs.items()})
        start += count
    return pieces


def _header(entry: Any, position: int, specs: Mapping[str, TensorSpec],
            ) -> tuple[TensorSpec, tuple[int, ...], list[Any]]:
    if not isinstance(entry, dict):
        raise errors.InvalidInput("must be an object with name, datatype, shape and data",
                                  field=f"inputs[{position}]")
    name = entry.get("name")
    if not isinstance(name, str):
        raise errors.InvalidInput("name: required, a string", field=f"inputs[{position}]")
    spec = specs.get(name)
    if spec is None:
        raise errors.InvalidInput(f"unknown input {_show(name)}; this model takes: "
                                  f"{', '.join(specs) or 'no declared inputs'}")
    if entry.get("datatype") != spec.datatype:
        raise errors.InvalidInput(f"datatype is {_show(entry.get('datatype'))}, expected "
                                  f"{spec.datatype}", field=_field(name))
    shape = _shape(name, entry.get("shape"), spec.shape)
    parameters = entry.get("parameters")
    if parameters is not None and "binary_data_size" in _object(parameters, f"{_field(name)}: parameters"):
        raise errors.InvalidInput("binary tensor data is not supported: send data as JSON",
                                  field=_field(name))
    data = entry.get("data")
    if not isinstance(data, list):
        raise errors.InvalidInput("data: required, a flat or nested list", field=_field(name))
    return spec, shape, data


def _shape(name: str, value: Any, declared: tuple[int, ...]) -> tuple[int, ...]:
    # Plain code, no generators: this runs once per input, and one input per column is common.
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
        message = f"shape must be a list of non-negative integers, not {_show(value)}"
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
    except ValueError:  # deeper than numpy's dimension limit
        grid = None
    if grid is None or grid.shape != shape:
        raise errors.InvalidInput(f"nested data must be rectangular, one list level per "
                                  f"dimension of shape {list(shape)}", field=_field(name))
    return grid.ravel().tolist()  # type: ignore[no-any-return]


def _convert(name: str, datatype: str, data: list[Any]) -> np.ndarray:
    dtype = _DTYPES[datatype]
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


def _output(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = datatype_of(array.dtype)
    data: Any
    if datatype == "BYTES":
        data = array.ravel().tolist()
        if not set(map(type, data)) <= {str}:
            data = [value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    for value in data]
    else:  # orjson writes a C-contiguous 1-D array as one flat JSON list
        data = np.ascontiguousarray(array).reshape(-1)
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.InvalidInput("must be a JSON object", field=field)
    return value


def _requested_outputs(value: Any) -> tuple[str, ...] | None:
    """Names from ``outputs``; absent or empty means every output, as in Triton."""
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) and
                                              isinstance(item.get("name"), str) for item in value):
        raise errors.InvalidInput("must be a list of objects with a name", field="outputs")
    names = tuple(item["name"] for item in value)
    if len(set(names)) != len(names):
        raise errors.InvalidInput("an output is requested more than once", field="outputs")
    return names


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _field(name: str) -> str:
    return f"input {name!r}"


def _show(value: Any) -> str:
    """A value received over the wire, cut short enough to quote in a message."""
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."
