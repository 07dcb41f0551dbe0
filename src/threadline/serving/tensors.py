"""Open Inference Protocol v2 (KServe v2 / Triton HTTP) JSON bodies to numpy and back.

Every inference request passes through here, so element data never meets a Python loop:
orjson parses and writes, numpy converts. ``_inputs`` reads and checks each input tensor,
``_binary`` the raw tensors of Triton's binary tensor data extension. A request that does not
match the version's signature is refused before the model sees it, with a message that names
the input and says what is wrong: it becomes the HTTP 400 body.

JSON has no NaN or infinities. Requests cannot send them (a string or null where a number
belongs is refused, and so is a finite number that overflows FP16/FP32), and NaN or ±inf in
an output is written as ``null``, which is what orjson does with non-finite floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from threadline.domain import errors
from threadline.domain.models import TensorSpec
from threadline.serving import _binary, _inputs

_DATATYPES = {dtype: name for name, dtype in _inputs.DTYPES.items() if name != "BYTES"}


@dataclass(slots=True)
class Request:
    """A decoded inference request: one array per signature input, all with ``rows`` rows.

    Not frozen, though nothing changes it: one is built per request, and a frozen dataclass's
    ``__init__``, which sets every field through ``object.__setattr__``, costs several times as much.
    """

    id: str | None
    tensors: dict[str, np.ndarray]
    rows: int
    parameters: dict[str, Any]
    requested_outputs: tuple[str, ...] | None  # None: every output the model declares
    binary_outputs: frozenset[str] | bool = frozenset()  # True: every output (binary_data_output)


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a protocol datatype; BYTES are object arrays of str."""
    try:
        return _inputs.DTYPES[datatype]
    except KeyError:
        raise errors.InvalidInput(f"unknown datatype {_inputs.show(datatype)}; expected one of "
                                  f"{', '.join(_inputs.DTYPES)}") from None


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


def decode_request(body: bytes, inputs: Sequence[TensorSpec], *, max_rows: int = 65536,
                   header_length: str | None = None) -> Request:
    """Parse an infer request and check it against the version's input signature.

    ``header_length`` is the request's ``Inference-Header-Content-Length`` HTTP header, which
    clients of the binary tensor data extension (tritonclient, by default) send.
    """
    header, binary = (body, None) if header_length is None else \
        _binary.split(body, header_length)
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if header_length is None and b'"binary_data_size"' in body:
            hint = f"; binary tensor data needs the {_binary.HEADER} header"
        raise errors.InvalidInput(f"request body is not valid JSON: {exc}{hint}") from None
    if not isinstance(document, dict):
        raise errors.InvalidInput("request body must be a JSON object")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise errors.InvalidInput("must be a string", field="id")
    entries = document.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise errors.InvalidInput("required: a non-empty list of input tensors", field="inputs")
    tensors, rows = _inputs.read(entries, inputs, max_rows, binary)
    parameters = _inputs.json_object(document.get("parameters"), "parameters")
    requested, binary_outputs = _requested_outputs(document.get("outputs"))
    everything = parameters.get("binary_data_output")
    if everything is not None and not isinstance(everything, bool):
        raise errors.InvalidInput("must be true or false", field="parameters.binary_data_output")
    return Request(request_id, tensors, rows, parameters, requested, everything or binary_outputs)


def select_outputs(specs: Sequence[TensorSpec], requested: tuple[str, ...] | None,
                   ) -> tuple[TensorSpec, ...]:
    """The output specs a request asked for, in its order; run this before the model does."""
    if requested is None:
        return tuple(specs)
    by_name = {spec.name: spec for spec in specs}
    unknown = [name for name in requested if name not in by_name]
    if unknown:
        raise errors.InvalidInput(f"unknown output {_inputs.show(unknown[0])}; this model returns: "
                                  f"{', '.join(by_name) or 'no declared outputs'}", field="outputs")
    return tuple(by_name[name] for name in requested)


def encode_response(model_name: str, model_version: str, request_id: str,
                    outputs: Mapping[str, np.ndarray], specs: Sequence[TensorSpec],
                    parameters: dict[str, Any] | None = None,
                    binary: frozenset[str] | bool = frozenset()) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON header when outputs go in binary.

    ``specs`` choose the outputs and their order (all, if empty); ``binary`` names the outputs
    sent as raw tensors after the JSON (Triton's binary tensor data extension; True: all). The
    caller passes the id, generating one (uuid4 hex) when the request had none, because the
    same id also keys the prediction log and the trace. Datatypes follow the arrays' dtypes.
    """
    names = [spec.name for spec in specs] if specs else list(outputs)
    tensors, raw = [], []
    for name in names:
        array = outputs.get(name)
        if array is None:  # the model broke its own signature: a server error, not the caller's
            raise errors.ThreadlineError(f"model {model_name} returned no output {name!r}")
        array = np.asarray(array)
        if binary is True or (binary and name in binary):
            chunk = _binary.pack(array)
            raw.append(chunk)
            tensors.append({"name": name, "datatype": datatype_of(array.dtype),
                            "shape": list(array.shape), "parameters": {"binary_data_size": len(chunk)}})
        else:
            tensors.append(_output(name, array))
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version,
                                "id": request_id}
    if parameters is not None:
        document["parameters"] = parameters
    document["outputs"] = tensors
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw:
        return header, None
    return header + b"".join(raw), len(header)


def model_metadata(name: str, versions: Sequence[str], platform: str,
                   inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> dict[str, Any]:
    """The body of ``GET /v2/models/{name}``."""
    return {"name": name, "versions": list(versions), "platform": platform,
            "inputs": [_spec(spec) for spec in inputs], "outputs": [_spec(spec) for spec in outputs]}


def concat_rows(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack requests of one signature into a batch along axis 0 (their dtypes are equal)."""
    if len(parts) <= 1:
        return dict(parts[0]) if parts else {}
    names = parts[0].keys()
    if any(part.keys() != names for part in parts):
        raise errors.ThreadlineError("cannot batch requests that carry different tensors")
    return {name: np.concatenate([part[name] for part in parts]) for name in names}


def split_rows(outputs: Mapping[str, np.ndarray], counts: Sequence[int],
               ) -> list[dict[str, np.ndarray]]:
    """Cut a batch's outputs back into per-request pieces of ``counts`` rows (views, no copy)."""
    total = sum(counts)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:  # the model dropped or added rows
            raise errors.ThreadlineError(f"output {name!r} has shape {list(array.shape)}, but the "
                                         f"batch has {total} rows")
    pieces: list[dict[str, np.ndarray]] = []
    start = 0
    for count in counts:
        pieces.append({name: array[start:start + count] for name, array in outputs.items()})
        start += count
    return pieces


def _output(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = _DATATYPES.get(array.dtype) or datatype_of(array.dtype)  # a numeric dtype in one look-up
    data: Any = array.ravel()  # C-contiguous and 1-D, which orjson writes as one flat JSON list
    if datatype == "BYTES":  # the protocol's JSON form of BYTES is a string per element
        data = data.tolist()
        if not set(map(type, data)) <= {str}:
            data = [value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    for value in data]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _requested_outputs(value: Any) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    """Names from ``outputs`` (absent or empty: every output, as in Triton), and those asked for
    as binary data (``"parameters": {"binary_data": true}``)."""
    if value is None or value == []:
        return None, frozenset()
    if not isinstance(value, list) or not all(isinstance(item, dict) and
                                              isinstance(item.get("name"), str) for item in value):
        raise errors.InvalidInput("must be a list of objects with a name", field="outputs")
    names = tuple(item["name"] for item in value)
    if len(set(names)) != len(names):
        raise errors.InvalidInput("an output is requested more than once", field="outputs")
    binary = set()
    for index, item in enumerate(value):
        wanted = _inputs.json_object(item.get("parameters"), f"outputs[{index}].parameters").get("binary_data")
        if wanted is not None and not isinstance(wanted, bool):
            raise errors.InvalidInput("must be true or false", field=f"outputs[{index}].parameters.binary_data")
        if wanted:
            binary.add(item["name"])
    return names, frozenset(binary)


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}
