"""Reading an uploaded ONNX model: its tensors, in Open Inference Protocol terms, and its task.

ONNX needs the optional ``threadline[onnx]`` extra, so everything here imports it lazily.
External data is never followed: a file name inside an uploaded model could point at any
file on the control-plane server.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any, Literal

from threadline.domain import errors
from threadline.domain.models import TensorSpec

_DATATYPES = {
    "BOOL": "BOOL", "INT8": "INT8", "INT16": "INT16", "INT32": "INT32", "INT64": "INT64",
    "UINT8": "UINT8", "UINT16": "UINT16", "UINT32": "UINT32", "UINT64": "UINT64",
    "FLOAT16": "FP16", "FLOAT": "FP32", "DOUBLE": "FP64", "STRING": "BYTES",
}


@dataclasses.dataclass(frozen=True)
class Graph:
    """The facts a checked ONNX graph declares about itself."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    task: Literal["classification", "regression", "unknown"]
    classes: tuple[Any, ...] | None


def parse(path: Path, *, required: bool) -> Any:
    """The ModelProto in ``path``; None if it is not ONNX, unless ``required`` (then InvalidInput).

    When not required and onnx is not installed, the answer is None: the caller did not ask
    for ONNX, so a missing extra only means the content cannot be recognised as ONNX.
    """
    if not required and importlib.util.find_spec("onnx") is None:
        return None
    onnx = errors.require_module("onnx", extra="onnx", feature="ONNX models")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types on foreign bytes
        if required:
            raise errors.InvalidInput(
                f"{path.name} is not an ONNX model: {exc}", field="artifact") from exc
        return None
    if not model.HasField("graph") or not model.graph.output:
        if required:
            raise errors.InvalidInput(
                f"{path.name} is not an ONNX model: it has no graph", field="artifact")
        return None
    return model


def read(path: Path, model: Any) -> Graph:
    """Check the model and read its inputs, outputs and task; InvalidInput names what is wrong."""
    import onnx  # parse() has already required it

    graph = model.graph
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
        raise errors.InvalidInput(
            f"{path.name} keeps weights in external data files: save it as one file",
            field="artifact")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise errors.InvalidInput(
            f"{path.name} is not a valid ONNX model: {exc}", field="artifact") from exc
    initializers = {t.name for t in graph.initializer}  # older IR versions list them as inputs
    inputs = tuple(_spec(v, "input") for v in graph.input if v.name not in initializers)
    outputs = tuple(_spec(v, "output") for v in graph.output)
    for node in graph.node:
        if node.domain == "ai.onnx.ml" and node.op_type.endswith("Classifier"):
            return Graph(inputs, outputs, "classification", _class_labels(node))
        if node.domain == "ai.onnx.ml" and node.op_type.endswith("Regressor"):
            return Graph(inputs, outputs, "regression", None)
    return Graph(inputs, outputs, "unknown", None)


def _spec(value: Any, role: str) -> TensorSpec:
    import onnx

    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise errors.InvalidInput(
            f"ONNX {role} {value.name!r} is a {kind}, which the Open Inference Protocol cannot "
            "carry; for skl2onnx classifiers convert with options={id(model): {'zipmap': False}}",
            field="artifact")
    tensor = value.type.tensor_type
    elem = onnx.TensorProto.DataType.Name(tensor.elem_type)
    if elem not in _DATATYPES:
        raise errors.InvalidInput(
            f"ONNX {role} {value.name!r} has element type {elem}, which is not supported",
            field="artifact")
    dims = tensor.shape.dim if tensor.HasField("shape") else ()
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims)
    return TensorSpec(value.name, _DATATYPES[elem], shape or (-1,))


def _class_labels(node: Any) -> tuple[Any, ...] | None:
    """The class labels an ai.onnx.ml classifier operator carries as attributes."""
    import onnx

    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    for key in ("classlabels_strings", "classlabels_ints", "classlabels_int64s"):
        if attributes.get(key):
            labels = attributes[key]
            return tuple(v.decode() if isinstance(v, bytes) else int(v) for v in labels)
    return None
