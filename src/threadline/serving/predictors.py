"""Loaded models behind one call: named input tensors in, named output tensors out.

Every predictor takes a batch (tensors stacked along axis 0) and returns the outputs the
version's signature declares: ``label`` and ``probabilities`` for classifiers, ``prediction``
for regressors, the graph's outputs for ONNX. Loading checks trust first: formats that run
code on load are refused unless the version was registered as trusted.

scikit-learn models fitted on a DataFrame remember their column names and, given a
DataFrame, spend milliseconds per call validating it. Unless a step really selects columns
by name (a ColumnTransformer, a FunctionTransformer), the predictor hands them a plain
array in signature order and drops the remembered names from its private copy, which is
ten times faster and gives identical results.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import yaml

from threadline.artifacts import archive
from threadline.bundles import chain as decision
from threadline.domain import errors
from threadline.domain.models import ArtifactFormat, Signature
from threadline.serving import linear

Tensors = dict[str, np.ndarray]


class Predictor(Protocol):
    signature: Signature

    def predict(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """Run the model on a batch; every output has the batch's first dimension."""

    def chain(self, inputs: Mapping[str, np.ndarray]) -> list[list[decision.Step]]:
        """The decision chain of each row of a batch (see ``bundles.chain``), for the context
        bundle of a prediction escalated to a reviewer."""


@dataclass(frozen=True)
class LoadRequest:
    """What is needed to load one version: its stored bytes and what the registry knows."""

    path: Path
    artifact_format: ArtifactFormat
    trusted: bool
    signature: Signature
    label: str  # "name@version", for messages


def load(request: LoadRequest, workdir: Path) -> Predictor:
    if request.artifact_format.executes_code_on_load and not request.trusted:
        raise errors.PolicyViolation(
            f"{request.label} is a pickle, which runs code when loaded, and was not registered as "
            "trusted: re-register it as trusted (an approver must confirm) or save it with skops/ONNX")
    if request.artifact_format is ArtifactFormat.MLFLOW_DIR or _is_mlflow_pickle(request):
        return _load_mlflow(request, workdir)
    if request.artifact_format is ArtifactFormat.ONNX:
        return OnnxPredictor(request.path, request.signature)
    return SklearnPredictor(_load_estimator(request.path, request.artifact_format), request.signature)


def _is_mlflow_pickle(request: LoadRequest) -> bool:
    return request.artifact_format is ArtifactFormat.PICKLE and archive.is_archive(request.path)


def _load_estimator(path: Path, artifact_format: ArtifactFormat) -> Any:
    if artifact_format is ArtifactFormat.SKOPS:
        from threadline.registry import flavors

        return flavors.load_skops(path)
    import joblib  # trusted pickles only (checked in load)

    return joblib.load(path)


def _load_mlflow(request: LoadRequest, workdir: Path) -> Predictor:
    # Both loaders read the model into memory, so the unpacked folder is removed afterwards.
    scratch = Path(tempfile.mkdtemp(prefix="mlflow-", dir=workdir))
    try:
        folder = scratch / "model"
        archive.extract(request.path, folder)
        spec = yaml.safe_load((folder / "MLmodel").read_text())
        flavors = spec.get("flavors") or {}
        if "onnx" in flavors:
            return OnnxPredictor(_inside(folder, flavors["onnx"].get("data", "")), request.signature)
        sklearn = flavors.get("sklearn") or {}
        fmt = ArtifactFormat.SKOPS if sklearn.get("serialization_format") == "skops" else ArtifactFormat.PICKLE
        return SklearnPredictor(_load_estimator(_inside(folder, sklearn.get("pickled_model", "")), fmt),
                                request.signature)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _inside(folder: Path, relative: str) -> Path:
    path = (folder / relative).resolve()
    if not relative or not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise errors.InvalidInput(f"MLmodel points at {relative!r}, which is not a file in the model folder")
    return path


# Estimators whose predict() is exactly classes_[argmax(predict_proba())], so one call gives both.
_ARGMAX_CLASSIFIERS = ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier",
                       "ExtraTreeClassifier", "LogisticRegression", "GaussianNB", "KNeighborsClassifier")
_NAME_DEPENDENT_STEPS = ("ColumnTransformer", "FunctionTransformer")


class SklearnPredictor:
    """Owns ``estimator``: it may drop the remembered column names of its steps (see above)."""

    def __init__(self, estimator: Any, signature: Signature) -> None:
        from sklearn.pipeline import Pipeline

        self.signature = signature
        self._estimator = estimator
        final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
        self._names = [spec.name for spec in signature.inputs]
        self._by_name = _needs_frame(estimator)
        if not self._by_name:
            _forget_feature_names(estimator)
        self._outputs = {spec.name for spec in signature.outputs}
        self._argmax = type(final).__name__ in _ARGMAX_CLASSIFIERS and hasattr(final, "classes_")
        self._classes = getattr(final, "classes_", None)
        classifier = "probabilities" in self._outputs
        self._predict: Callable[[Any], Tensors] = self._classify if classifier else self._regress
        # Evaluated directly when exactly equal (see ``linear``): scikit-learn's checks on every
        # call cost twenty times the arithmetic of a one-row linear model.
        method = "predict_proba" if classifier else "predict"
        self._plan = None if self._by_name else linear.plan_for(estimator, method)

    def predict(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return self._predict(self._features(inputs))

    def chain(self, inputs: Mapping[str, np.ndarray]) -> list[list[decision.Step]]:
        return decision.decision_chain(self._estimator, self._features(inputs))

    def _features(self, inputs: Mapping[str, np.ndarray]) -> Any:
        if len(self._names) == 1 and inputs[self._names[0]].ndim == 2:
            return inputs[self._names[0]]
        if self._by_name:
            import pandas as pd

            return pd.DataFrame({name: inputs[name] for name in self._names})
        return np.column_stack([inputs[name] for name in self._names])

    def _classify(self, features: Any) -> Tensors:
        probabilities = np.asarray(self._answer(features, "predict_proba"), dtype=np.float64)
        if self._argmax and self._classes is not None:
            label = self._classes[probabilities.argmax(axis=1)]
        else:
            label = np.asarray(self._estimator.predict(features))
        return {"label": label, "probabilities": probabilities}

    def _regress(self, features: Any) -> Tensors:
        name = next(iter(self._outputs), "prediction")
        return {name: np.asarray(self._answer(features, "predict"), dtype=np.float64)}

    def _answer(self, features: Any, method: str) -> Any:
        """The linear plan's answer where it gives scikit-learn's exact bits, else ``method``'s."""
        plan = self._plan
        if plan is not None and plan.accepts(features):
            return plan(features)
        return getattr(self._estimator, method)(features)


def _steps(estimator: Any) -> list[Any]:
    """The estimator and everything nested in it (pipeline steps, transformer lists)."""
    found, stack = [], [estimator]
    while stack:
        current = stack.pop()
        found.append(current)
        for attr in ("steps", "transformers", "transformer_list"):
            for item in getattr(current, attr, None) or []:
                if isinstance(item, tuple) and len(item) >= 2 and hasattr(item[1], "get_params"):
                    stack.append(item[1])
    return found


def _needs_frame(estimator: Any) -> bool:
    return any(type(step).__name__ in _NAME_DEPENDENT_STEPS or not type(step).__module__.startswith("sklearn")
               for step in _steps(estimator))


def _forget_feature_names(estimator: Any) -> None:
    for step in _steps(estimator):
        if "feature_names_in_" in vars(step):  # Pipeline's is a read-only property over its first step
            del step.feature_names_in_


class OnnxPredictor:
    def __init__(self, path: Path, signature: Signature) -> None:
        ort = errors.require_module("onnxruntime", extra="onnx", feature="serving ONNX models")
        options = ort.SessionOptions()  # type: ignore[attr-defined]
        options.intra_op_num_threads = 1  # batching gives the parallelism; threads would fight it
        self._session = ort.InferenceSession(str(path), sess_options=options,  # type: ignore[attr-defined]
                                             providers=["CPUExecutionProvider"])
        self.signature = signature
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]

    def predict(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        feeds = {name: inputs[name] for name in self._inputs}
        results = self._session.run(self._outputs, feeds)
        return {name: np.asarray(value) for name, value in zip(self._outputs, results)}

    def chain(self, inputs: Mapping[str, np.ndarray]) -> list[list[decision.Step]]:
        """One step per row: an ONNX graph is opaque, so its outputs are the whole chain."""
        feeds = {name: inputs[name] for name in self._inputs}
        # Split the raw results: a ZipMap output is a list of {class: probability} per row.
        per_output = [decision.rows(value) for value in self._session.run(self._outputs, feeds)]
        return [[{"step": "model", "kind": "predict", "output": dict(zip(self._outputs, row))}]
                for row in zip(*per_output)]
