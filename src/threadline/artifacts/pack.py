"""Turning what a data scientist holds into one uploadable artifact file (SDK side).

A fitted estimator is saved with skops, never pickled, so the server can inspect it without
trusting it; an ONNX model is serialised as is; files are sent unchanged; an MLflow folder
becomes one deterministic tar. The server re-detects the format from the bytes, so the
flavor chosen here is a declaration it checks, not something it believes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from threadline.artifacts import archive
from threadline.domain import errors
from threadline.domain.models import Flavor

_SUFFIX_FLAVORS = {
    ".skops": Flavor.SKLEARN, ".pkl": Flavor.SKLEARN, ".pickle": Flavor.SKLEARN,
    ".joblib": Flavor.SKLEARN, ".onnx": Flavor.ONNX,
}


def pack_model(model_or_path: object, workdir: Path,
               flavor: str | Flavor | None) -> tuple[Path, Flavor]:
    """Return the file to upload and its flavor; files are returned in place, not copied."""
    workdir = Path(workdir)
    wanted = _parse_flavor(flavor)
    if isinstance(model_or_path, (str, Path)):
        return _pack_path(Path(model_or_path), workdir, wanted)
    onnx = sys.modules.get("onnx")  # a ModelProto can only exist if onnx is already imported
    if onnx is not None and isinstance(model_or_path, onnx.ModelProto):
        _require(wanted, Flavor.ONNX, "an ONNX ModelProto")
        dest = workdir / "model.onnx"
        dest.write_bytes(model_or_path.SerializeToString())
        return dest, Flavor.ONNX
    from sklearn import base as sk_base  # imported late: it costs the CLI a second at start-up

    if isinstance(model_or_path, sk_base.BaseEstimator):
        _require(wanted, Flavor.SKLEARN, "a scikit-learn estimator (saved with skops)")
        return _dump_skops(model_or_path, workdir), Flavor.SKLEARN
    raise errors.InvalidInput(
        f"cannot register a {type(model_or_path).__name__}: pass a fitted scikit-learn "
        "estimator, an ONNX ModelProto, or a path to a .skops, .onnx, .pkl/.joblib file or an "
        "MLflow model folder",
        field="model",
    )


def _parse_flavor(flavor: str | Flavor | None) -> Flavor | None:
    if flavor is None or isinstance(flavor, Flavor):
        return flavor
    try:
        return Flavor(flavor)
    except ValueError:
        valid = ", ".join(f.value for f in Flavor)
        raise errors.InvalidInput(
            f"unknown flavor {flavor!r}: use one of {valid}", field="flavor") from None


def _require(wanted: Flavor | None, actual: Flavor, what: str) -> None:
    if wanted is not None and wanted is not actual:
        raise errors.InvalidInput(
            f"flavor {wanted.value!r} does not fit {what}, which is flavor {actual.value!r}",
            field="flavor",
        )


def _pack_path(path: Path, workdir: Path, wanted: Flavor | None) -> tuple[Path, Flavor]:
    if path.is_dir():
        if not (path / "MLmodel").is_file():
            raise errors.InvalidInput(
                f"{path} is a folder without an MLmodel file: only MLflow model folders can be "
                "registered",
                field="model",
            )
        _require(wanted, Flavor.MLFLOW, f"the MLflow model folder {path.name}")
        dest = workdir / "model.tar"
        archive.pack_directory(path, dest)
        return dest, Flavor.MLFLOW
    if not path.is_file():
        raise errors.InvalidInput(f"{path}: no such file or folder", field="model")
    detected = _SUFFIX_FLAVORS.get(path.suffix.lower())
    if detected is None:
        if wanted is None:
            raise errors.InvalidInput(
                f"cannot tell the flavor of {path.name} from its extension: pass flavor= "
                f"({', '.join(f.value for f in Flavor)})",
                field="flavor",
            )
        return path, wanted
    _require(wanted, detected, path.name)
    return path, detected


def _dump_skops(estimator: object, workdir: Path) -> Path:
    import skops.io
    from sklearn.exceptions import NotFittedError
    from sklearn.utils import validation

    try:
        validation.check_is_fitted(estimator)
    except NotFittedError as exc:
        raise errors.InvalidInput(
            f"the {type(estimator).__name__} is not fitted: call fit() before registering it",
            field="model",
        ) from exc
    dest = workdir / "model.skops"
    skops.io.dump(estimator, dest)
    return dest
