"""Artifact inspection: format from content, pickles never loaded, skops types allowlisted."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import onnx
import onnx.external_data_helper
import pytest
import skops.io
import yaml
from skl2onnx import to_onnx
from sklearn.base import BaseEstimator, TransformerMixin, is_classifier
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from threadline.artifacts import archive, pack
from threadline.domain import errors
from threadline.domain.models import ArtifactFormat, Flavor, TensorSpec
from threadline.registry import flavors


class Identity(TransformerMixin, BaseEstimator):
    """A custom type: skops reports it as untrusted."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


class TouchOnLoad:
    """Unpickling this creates ``marker``: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture(scope="module")
def classifier(iris):
    X, y = iris
    return LogisticRegression(max_iter=500).fit(X, y)


def dump_skops(model, path: Path) -> Path:
    skops.io.dump(model, path)
    return path


SKOPS_IN_MLFLOW = {"sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}}
LABEL_OUTPUT = (TensorSpec("label", "INT64", (-1,)),)


def onnx_proto(model, X, *, zipmap: bool = False):
    options = {id(model): {"zipmap": False}} if is_classifier(model) and not zipmap else None
    return to_onnx(model, np.asarray(X)[:1].astype(np.float32), options=options)


def to_onnx_file(model, X, path: Path, *, zipmap: bool = False) -> Path:
    path.write_bytes(onnx_proto(model, X, zipmap=zipmap).SerializeToString())
    return path


def mlflow_archive(tmp_path: Path, flavor: dict, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    (folder / "MLmodel").write_text(yaml.safe_dump({"artifact_path": "model", "flavors": flavor}))
    for name, content in files.items():
        (folder / name).write_bytes(content)
    dest = tmp_path / "model.tar"
    archive.pack_directory(folder, dest)
    return dest


def test_skops_classifier(tmp_path, iris, classifier) -> None:
    path = dump_skops(classifier, tmp_path / "m.skops")
    result = flavors.inspect_artifact(path, Flavor.SKLEARN, trusted=False)
    assert (result.flavor, result.artifact_format) == (Flavor.SKLEARN, ArtifactFormat.SKOPS)
    assert result.task == "classification"
    assert result.feature_names == tuple(iris[0].columns) and result.n_features == 4
    assert result.classes == (0, 1, 2) and result.inputs == ()
    assert result.outputs == LABEL_OUTPUT + (TensorSpec("probabilities", "FP64", (-1, 3)),)


def test_skops_regressor_without_feature_names(tmp_path) -> None:
    X, y = load_diabetes(return_X_y=True)
    path = dump_skops(LinearRegression().fit(X, y), tmp_path / "r.skops")
    result = flavors.inspect_artifact(path, None, trusted=False)
    assert result.task == "regression" and result.classes is None
    assert result.feature_names is None and result.n_features == 10
    assert result.outputs == (TensorSpec("prediction", "FP64", (-1,)),)


def test_skops_pipeline_uses_the_final_step_for_the_task(tmp_path, iris) -> None:
    X, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y.map(str))
    result = flavors.inspect_artifact(dump_skops(model, tmp_path / "p.skops"), None, trusted=False)
    assert result.task == "classification" and result.feature_names == tuple(X.columns)
    assert result.classes == ("0", "1", "2")
    assert result.outputs[0] == TensorSpec("label", "BYTES", (-1,))


@pytest.mark.parametrize(
    ("step", "named"),
    [
        (Identity(), "Identity"),
        (FunctionTransformer(np.load), "numpy.load"),
        (FunctionTransformer(eval), "builtins.eval"),
    ],
)
def test_skops_with_untrusted_types_is_refused(tmp_path, iris, step, named) -> None:
    X, y = iris
    model = make_pipeline(step, LogisticRegression(max_iter=500))
    model.steps[-1] = ("logisticregression", LogisticRegression(max_iter=500).fit(X, y))
    with pytest.raises(errors.PolicyViolation, match=named):
        flavors.inspect_artifact(dump_skops(model, tmp_path / "u.skops"), None, trusted=True)


def test_skops_zip_bomb_guard(tmp_path, classifier) -> None:
    path = dump_skops(classifier, tmp_path / "m.skops")
    with pytest.raises(errors.PayloadTooLarge, match="unpacks to more than 100 bytes"):
        flavors.inspect_artifact(path, None, trusted=False, max_unpacked_bytes=100)


def test_onnx_classifier(tmp_path, iris, classifier) -> None:
    path = to_onnx_file(classifier, iris[0], tmp_path / "m.onnx")
    result = flavors.inspect_artifact(path, Flavor.ONNX, trusted=False)
    assert (result.flavor, result.artifact_format) == (Flavor.ONNX, ArtifactFormat.ONNX)
    assert result.inputs == (TensorSpec("X", "FP32", (-1, 4)),) and result.n_features == 4
    assert result.outputs == LABEL_OUTPUT + (TensorSpec("probabilities", "FP32", (-1, 3)),)
    assert result.task == "classification" and result.classes == (0, 1, 2)


def test_onnx_regressor_detected_without_a_declared_flavor(tmp_path) -> None:
    X, y = load_diabetes(return_X_y=True)
    path = to_onnx_file(LinearRegression().fit(X, y), X, tmp_path / "r.bin")
    result = flavors.inspect_artifact(path, None, trusted=False)
    assert result.flavor is Flavor.ONNX and result.task == "regression"


def test_onnx_zipmap_output_is_refused_with_a_hint(tmp_path, iris, classifier) -> None:
    path = to_onnx_file(classifier, iris[0], tmp_path / "m.onnx", zipmap=True)
    with pytest.raises(errors.InvalidInput, match="zipmap"):
        flavors.inspect_artifact(path, Flavor.ONNX, trusted=False)


def test_onnx_external_data_is_refused(tmp_path) -> None:
    weights = onnx.numpy_helper.from_array(np.ones((2, 1), np.float32), name="W")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["X", "W"], ["Y"])], "g",
        [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, ["N", 2])],
        [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["N", 1])],
        initializer=[weights],
    )
    proto = onnx.helper.make_model(graph)
    onnx.external_data_helper.convert_model_to_external_data(
        proto, size_threshold=0, location="weights.bin")
    path = tmp_path / "ext.onnx"
    onnx.save_model(proto, path)
    with pytest.raises(errors.InvalidInput, match="external data"):
        flavors.inspect_artifact(path, Flavor.ONNX, trusted=False)


def test_text_declared_as_onnx_is_refused(tmp_path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("definitely not a model\n")
    with pytest.raises(errors.InvalidInput, match="model.onnx is not an ONNX model"):
        flavors.inspect_artifact(path, Flavor.ONNX, trusted=False)
    with pytest.raises(errors.InvalidInput, match="none of skops, ONNX"):
        flavors.inspect_artifact(path, None, trusted=False)


def test_declared_flavor_must_match_the_content(tmp_path, classifier) -> None:
    path = dump_skops(classifier, tmp_path / "m.skops")
    with pytest.raises(errors.InvalidInput, match="is not an ONNX model: it is a skops file"):
        flavors.inspect_artifact(path, Flavor.ONNX, trusted=False)


def test_untrusted_pickle_is_refused_and_never_loaded(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(TouchOnLoad(marker)))
    with pytest.raises(errors.PolicyViolation, match="executes code when it is loaded"):
        flavors.inspect_artifact(path, Flavor.SKLEARN, trusted=False)
    result = flavors.inspect_artifact(path, Flavor.SKLEARN, trusted=True)
    assert result.artifact_format is ArtifactFormat.PICKLE and result.feature_names is None
    assert result.task == "unknown"
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is live: loading it would have left the marker
    assert marker.exists()


def test_compressed_joblib_is_recognised_as_a_pickle(tmp_path, classifier) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(classifier, path, compress=3)
    with pytest.raises(errors.PolicyViolation):
        flavors.inspect_artifact(path, None, trusted=False)


def test_mlflow_folder_with_skops_model(tmp_path, iris, classifier) -> None:
    content = dump_skops(classifier, tmp_path / "m.skops").read_bytes()
    path = mlflow_archive(tmp_path, SKOPS_IN_MLFLOW, {"model.skops": content})
    result = flavors.inspect_artifact(path, Flavor.MLFLOW, trusted=False)
    assert (result.flavor, result.artifact_format) == (Flavor.MLFLOW, ArtifactFormat.MLFLOW_DIR)
    assert result.feature_names == tuple(iris[0].columns) and result.task == "classification"


def test_mlflow_folder_with_onnx_model(tmp_path, iris, classifier) -> None:
    content = onnx_proto(classifier, iris[0]).SerializeToString()
    flavor = {"onnx": {"data": "model.onnx"}, "python_function": None}
    path = mlflow_archive(tmp_path, flavor, {"model.onnx": content})
    result = flavors.inspect_artifact(path, None, trusted=False)
    assert (result.flavor, result.artifact_format) == (Flavor.MLFLOW, ArtifactFormat.MLFLOW_DIR)
    assert result.inputs == (TensorSpec("X", "FP32", (-1, 4)),)


def test_mlflow_folder_with_pickle_needs_trust_and_reports_pickle(tmp_path) -> None:
    marker = tmp_path / "pwned"
    flavor = {"sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}}
    path = mlflow_archive(tmp_path, flavor, {"model.pkl": pickle.dumps(TouchOnLoad(marker))})
    with pytest.raises(errors.PolicyViolation):
        flavors.inspect_artifact(path, Flavor.MLFLOW, trusted=False)
    result = flavors.inspect_artifact(path, Flavor.MLFLOW, trusted=True)
    assert (result.flavor, result.artifact_format) == (Flavor.MLFLOW, ArtifactFormat.PICKLE)
    assert not marker.exists()


def test_mlflow_model_path_must_stay_inside_the_archive(tmp_path) -> None:
    path = mlflow_archive(tmp_path, {"onnx": {"data": "../../etc/passwd"}}, {})
    with pytest.raises(errors.InvalidInput, match="must name a file inside the archive"):
        flavors.inspect_artifact(path, Flavor.MLFLOW, trusted=False)


def test_mlflow_folder_declaring_skops_but_holding_a_pickle(tmp_path, classifier) -> None:
    path = mlflow_archive(tmp_path, SKOPS_IN_MLFLOW, {"model.skops": pickle.dumps(classifier)})
    with pytest.raises(errors.InvalidInput, match="model.skops is not a skops file"):
        flavors.inspect_artifact(path, Flavor.MLFLOW, trusted=True)


def test_packed_models_inspect_as_declared(tmp_path, iris, classifier) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    path, flavor = pack.pack_model(classifier, workdir, None)
    assert path.name == "model.skops"
    assert flavors.inspect_artifact(path, flavor, trusted=False).task == "classification"
    proto = onnx_proto(classifier, iris[0])
    path, flavor = pack.pack_model(proto, workdir, "onnx")
    assert flavors.inspect_artifact(path, flavor, trusted=False).flavor is Flavor.ONNX
    folder = tmp_path / "mlflow"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
    (folder / "model.onnx").write_bytes(proto.SerializeToString())
    path, flavor = pack.pack_model(folder, workdir, None)
    assert (path.name, flavor) == ("model.tar", Flavor.MLFLOW)
    assert flavors.inspect_artifact(path, flavor, trusted=False).flavor is Flavor.MLFLOW


def test_pack_model_refusals(tmp_path, classifier) -> None:
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04N.")
    pickled = tmp_path / "model.pkl"
    assert pack.pack_model(pickled, tmp_path, None) == (pickled, Flavor.SKLEARN)
    with pytest.raises(errors.InvalidInput, match="use one of sklearn, onnx, mlflow"):
        pack.pack_model(classifier, tmp_path, "tensorflow")
    with pytest.raises(errors.InvalidInput, match="no such file"):
        pack.pack_model(tmp_path / "missing.skops", tmp_path, None)
    with pytest.raises(errors.InvalidInput, match="does not fit"):
        pack.pack_model(tmp_path / "model.pkl", tmp_path, "onnx")
    with pytest.raises(errors.InvalidInput, match="not fitted"):
        pack.pack_model(LogisticRegression(), tmp_path, None)
    with pytest.raises(errors.InvalidInput, match="without an MLmodel"):
        pack.pack_model(tmp_path, tmp_path / "out", None)
