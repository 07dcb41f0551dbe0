"""What an uploaded model artifact really is, read safely inside the control plane.

Uploads come from outside, so the content decides the format, never the file name or the
declared flavor (a mismatch is refused). Pickles are recognised by their opcodes and never
unpickled here: they execute code on load. skops files are loaded only with an explicit
allowlist of types, ONNX models are parsed without their external data, and MLflow folders
are unpacked by ``archive.extract``; zip and tar contents are sized before anything is read.
Recognising formats lives in ``detect``, reading ONNX graphs in ``onnx_graph``.

An MLflow folder whose model is pickled reports ``ArtifactFormat.PICKLE`` (not
``MLFLOW_DIR``) so that the one trust gate, ``ArtifactFormat.executes_code_on_load``,
covers it wherever the version is loaded; its flavor stays ``mlflow``.
"""

from __future__ import annotations

import dataclasses
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import yaml

from threadline.artifacts import archive
from threadline.domain import errors
from threadline.domain.models import ArtifactFormat, Flavor, TensorSpec
from threadline.registry import detect, onnx_graph, profiling

Task = Literal["classification", "regression", "unknown"]

MAX_UNPACKED_BYTES = 4 << 30
MAX_MEMBERS = 100_000

# skops reports every type outside its own safe defaults; these are the ones we add.
_TRUSTED_MODULES = ("sklearn", "numpy", "scipy.sparse")
_TRUSTED_BUILTINS = frozenset(
    {"builtins.slice", "builtins.range", "builtins.complex", "builtins.frozenset"}
)
# Callables within those modules that touch files or the network when a pipeline calls them.
_DENIED_MODULES = (
    "sklearn.datasets", "sklearn.utils._testing", "numpy.testing", "numpy.f2py",
    "numpy.ctypeslib", "numpy.lib.npyio", "numpy.lib._npyio_impl", "numpy.lib.format",
)
_DENIED_TYPES = frozenset({
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt",
    "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex", "numpy.memmap",
})
_FLAVOR_OF = {
    ArtifactFormat.SKOPS: Flavor.SKLEARN, ArtifactFormat.PICKLE: Flavor.SKLEARN,
    ArtifactFormat.ONNX: Flavor.ONNX, ArtifactFormat.MLFLOW_DIR: Flavor.MLFLOW,
}
_FLAVOR_TEXT = {
    Flavor.SKLEARN: "a scikit-learn model (skops or pickle)", Flavor.ONNX: "an ONNX model",
    Flavor.MLFLOW: "an MLflow model archive",
}
_FORMAT_TEXT = {
    ArtifactFormat.SKOPS: "a skops file", ArtifactFormat.PICKLE: "a pickle",
    ArtifactFormat.ONNX: "an ONNX model", ArtifactFormat.MLFLOW_DIR: "an MLflow model archive",
}


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What the artifact itself says about the model; None/empty where it says nothing."""

    flavor: Flavor
    artifact_format: ArtifactFormat
    feature_names: tuple[str, ...] | None
    n_features: int | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    task: Task
    classes: tuple[Any, ...] | None


@dataclasses.dataclass(frozen=True)
class _Limits:
    max_bytes: int
    max_members: int


def inspect_artifact(path: Path, declared: Flavor | None, *, trusted: bool,
                     max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
                     max_members: int = MAX_MEMBERS) -> Inspection:
    """Detect the format from content, check it against ``declared``, and read the model facts.

    Raises InvalidInput for unknown or mismatched content and PolicyViolation for a pickle
    that is not ``trusted`` (a trusted pickle is still not loaded: its facts stay unknown).
    """
    path = Path(path)
    limits = _Limits(max_unpacked_bytes, max_members)
    found = detect.detect_format(path, onnx_required=declared is Flavor.ONNX)
    if found is None:
        what = _FLAVOR_TEXT[declared] if declared else "a model artifact"
        raise errors.InvalidInput(
            f"{path.name} is not {what}: its content is none of skops, ONNX, an MLflow model "
            "archive or pickle", field="artifact")
    if declared is not None and _FLAVOR_OF[found] is not declared:
        raise errors.InvalidInput(
            f"{path.name} is not {_FLAVOR_TEXT[declared]}: it is {_FORMAT_TEXT[found]}",
            field="artifact")
    if found is ArtifactFormat.MLFLOW_DIR:
        return _inspect_mlflow(path, trusted=trusted, limits=limits)
    return _inspect_file(path, found, trusted=trusted, limits=limits)


def load_skops(path: Path, *, max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
               max_members: int = MAX_MEMBERS) -> Any:
    """Load a skops file, trusting only allowlisted types; PolicyViolation names the others."""
    import skops.io  # imports every scikit-learn estimator (seconds): only when a model is read

    path = Path(path)
    _check_zip_size(path, _Limits(max_unpacked_bytes, max_members))
    try:
        reported = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # any parse failure of uploaded bytes is the uploader's problem
        raise errors.InvalidInput(
            f"{path.name} is not a readable skops file: {exc}", field="artifact") from exc
    refused = sorted(name for name in reported if not _allowed_type(name))
    if refused:
        raise errors.PolicyViolation(
            f"{path.name} contains types outside the skops allowlist: {', '.join(refused)}; "
            "use only scikit-learn, numpy and scipy.sparse objects, or export the model to ONNX")
    try:
        return skops.io.load(path, trusted=reported)
    except Exception as exc:
        raise errors.InvalidInput(
            f"cannot load skops file {path.name}: {exc}", field="artifact") from exc


def _allowed_type(name: str) -> bool:
    def within(modules: tuple[str, ...]) -> bool:
        return any(name == module or name.startswith(module + ".") for module in modules)

    if name in _DENIED_TYPES or within(_DENIED_MODULES):
        return False
    return name in _TRUSTED_BUILTINS or within(_TRUSTED_MODULES)


def _check_zip_size(path: Path, limits: _Limits) -> None:
    # zipfile stops reading a member at its declared size, so the declared sizes bound memory.
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise errors.InvalidInput(
            f"{path.name} is not a valid zip file: {exc}", field="artifact") from exc
    if len(infos) > limits.max_members:
        raise errors.PayloadTooLarge(
            f"{path.name} has more than {limits.max_members} members", field="artifact")
    if sum(info.file_size for info in infos) > limits.max_bytes:
        raise errors.PayloadTooLarge(
            f"{path.name} unpacks to more than {limits.max_bytes} bytes", field="artifact")


def _inspect_file(path: Path, found: ArtifactFormat, *, trusted: bool,
                  limits: _Limits) -> Inspection:
    if found is ArtifactFormat.PICKLE:
        if not trusted:
            raise errors.PolicyViolation(
                f"{path.name} is a pickle, which executes code when it is loaded: register the "
                "version as trusted (an approver must confirm it) or save the model with skops "
                "or ONNX instead")
        return Inspection(
            Flavor.SKLEARN, ArtifactFormat.PICKLE, None, None, (), (), "unknown", None)
    if found is ArtifactFormat.SKOPS:
        estimator = load_skops(
            path, max_unpacked_bytes=limits.max_bytes, max_members=limits.max_members)
        return _sklearn_inspection(path, estimator)
    return _onnx_inspection(onnx_graph.read(path, onnx_graph.parse(path, required=True)))


def _sklearn_inspection(path: Path, estimator: Any) -> Inspection:
    from sklearn import base as sk_base  # scikit-learn takes seconds to import: only when needed
    from sklearn import pipeline as sk_pipeline

    if not hasattr(estimator, "predict"):
        raise errors.InvalidInput(
            f"{path.name} holds a {type(estimator).__name__}, not a fitted estimator with "
            "predict()", field="artifact")
    final = estimator[-1] if isinstance(estimator, sk_pipeline.Pipeline) else estimator
    names = getattr(estimator, "feature_names_in_", None)
    count = getattr(estimator, "n_features_in_", None)
    inspection = Inspection(
        flavor=Flavor.SKLEARN, artifact_format=ArtifactFormat.SKOPS,
        feature_names=tuple(str(name) for name in names) if names is not None else None,
        n_features=int(count) if count is not None else None,
        inputs=(), outputs=(), task="unknown", classes=None,
    )
    classes = getattr(final, "classes_", None)
    if sk_base.is_classifier(final) and isinstance(classes, np.ndarray) and classes.ndim == 1:
        outputs = [TensorSpec("label", _numpy_datatype(classes.dtype), (-1,))]
        if hasattr(estimator, "predict_proba"):
            outputs.append(TensorSpec("probabilities", "FP64", (-1, len(classes))))
        return dataclasses.replace(inspection, outputs=tuple(outputs), task="classification",
                                   classes=tuple(classes.tolist()))
    if sk_base.is_classifier(final):  # multi-output: no single label tensor to declare
        return dataclasses.replace(inspection, task="classification")
    if sk_base.is_regressor(final):
        n_outputs = int(getattr(final, "n_outputs_", 1))
        shape = (-1,) if n_outputs == 1 else (-1, n_outputs)
        prediction = TensorSpec("prediction", "FP64", shape)
        return dataclasses.replace(inspection, outputs=(prediction,), task="regression")
    return inspection


def _numpy_datatype(dtype: np.dtype) -> str:
    if dtype.kind in "OUS":
        return "BYTES"
    return profiling.oip_datatype(pa.from_numpy_dtype(dtype))


def _onnx_inspection(graph: onnx_graph.Graph) -> Inspection:
    inputs = graph.inputs
    if len(inputs) > 1:  # one input per feature, as skl2onnx makes for DataFrames
        feature_names: tuple[str, ...] | None = tuple(spec.name for spec in inputs)
        n_features: int | None = len(inputs)
    else:
        feature_names = None
        matrix = len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] > 0
        n_features = inputs[0].shape[1] if matrix else None
    return Inspection(Flavor.ONNX, ArtifactFormat.ONNX, feature_names, n_features, inputs,
                      graph.outputs, graph.task, graph.classes)


def _inspect_mlflow(path: Path, *, trusted: bool, limits: _Limits) -> Inspection:
    with tempfile.TemporaryDirectory(prefix="threadline-mlflow-") as tmp:
        root = Path(tmp) / "model"
        archive.extract(path, root, max_bytes=limits.max_bytes,
                        max_members=limits.max_members)
        flavors = _mlmodel_flavors(path, root)
        if "sklearn" in flavors:
            section = _section(path, flavors, "sklearn")
            fmt = section.get("serialization_format", "cloudpickle")
            if fmt not in ("skops", "pickle", "cloudpickle"):
                raise errors.InvalidInput(
                    f"{path.name}: MLmodel flavors.sklearn.serialization_format {fmt!r} is not "
                    "one of skops, pickle, cloudpickle", field="artifact")
            expected = ArtifactFormat.SKOPS if fmt == "skops" else ArtifactFormat.PICKLE
            model_file = _member(path, root, section, "sklearn", "pickled_model")
        elif "onnx" in flavors:
            expected = ArtifactFormat.ONNX
            model_file = _member(path, root, _section(path, flavors, "onnx"), "onnx", "data")
        else:
            raise errors.InvalidInput(
                f"{path.name}: MLmodel has no sklearn or onnx flavor "
                f"(found: {', '.join(map(str, flavors))})", field="artifact")
        found = detect.detect_format(
            model_file, onnx_required=expected is ArtifactFormat.ONNX)
        if found is not expected:
            raise errors.InvalidInput(
                f"{path.name}: {model_file.name} is not {_FORMAT_TEXT[expected]} as MLmodel "
                "declares", field="artifact")
        inner = _inspect_file(model_file, found, trusted=trusted, limits=limits)
    outer = ArtifactFormat.PICKLE if found is ArtifactFormat.PICKLE else ArtifactFormat.MLFLOW_DIR
    return dataclasses.replace(inner, flavor=Flavor.MLFLOW, artifact_format=outer)


def _mlmodel_flavors(path: Path, root: Path) -> dict[str, Any]:
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise errors.InvalidInput(
            f"{path.name} has no MLmodel file at its top level", field="artifact")
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(
            f"{path.name}: MLmodel is not valid YAML: {exc}", field="artifact") from exc
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    if not isinstance(flavors, dict):
        raise errors.InvalidInput(
            f"{path.name}: MLmodel has no 'flavors' mapping", field="artifact")
    return flavors


def _section(path: Path, flavors: dict[str, Any], flavor: str) -> dict[str, Any]:
    section = flavors[flavor]
    if not isinstance(section, dict):
        raise errors.InvalidInput(
            f"{path.name}: MLmodel flavors.{flavor} is not a mapping", field="artifact")
    return section


def _member(path: Path, root: Path, section: dict[str, Any], flavor: str, key: str) -> Path:
    rel = section.get(key)
    candidate = (root / rel).resolve() if isinstance(rel, str) and rel else None
    if candidate is None or not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
        raise errors.InvalidInput(
            f"{path.name}: MLmodel flavors.{flavor}.{key} ({rel!r}) must name a file inside "
            "the archive", field="artifact")
    return candidate


def preload() -> None:
    """Import the slow loaders ahead of the first registration (run in a background thread)."""
    import skops.io  # noqa: F401
