"""Fetch, verify and load the versions a server will serve, before it reports ready.

Versions are resolved through the control plane (``NAME@VERSION`` or ``NAME@ALIAS``, pinned to
a number and a digest at start). Artifacts are cached by digest and re-hashed before every
load, so a corrupted cache or a tampered download never reaches the model loader.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from threadline import files
from threadline.client import Client
from threadline.domain import errors, models, names
from threadline.serving import predictors


@dataclass(frozen=True)
class ModelRef:
    """One ``--model NAME@REF[=WEIGHT]`` argument."""

    name: str
    ref: str
    weight: int = 100

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        spec, _, weight = text.partition("=")
        name, ref = names.version_ref(spec)
        if weight and not weight.isdigit():
            raise errors.InvalidInput(f"--model {text!r}: the weight after '=' must be a whole number")
        return cls(name, ref, int(weight) if weight else 100)


@dataclass(frozen=True)
class LoadedVersion:
    model: str
    version: int
    digest: str
    signature: models.Signature
    predictor: predictors.Predictor
    load_seconds: float
    flavor: str
    artifact_format: str = ""
    lineage: dict[str, object] = field(default_factory=dict)  # the registry's lineage, for context bundles


def load_version(client: Client, ref: ModelRef, cache: Path, workdir: Path) -> LoadedVersion:
    started = time.perf_counter()
    info = client.get_version(ref.name, ref.ref)
    digest = str(info["artifact_digest"]).removeprefix("sha256:")
    path = cache / "sha256" / digest[:2] / digest
    if not path.exists():
        client.download_artifact(ref.name, info["version"], path)
    _verify(path, digest)
    signature = models.signature_from_json(info["signature"])
    predictor = predictors.load(predictors.LoadRequest(
        path=path, artifact_format=models.ArtifactFormat(info["artifact_format"]),
        trusted=bool(info["trusted"]), signature=signature, label=f"{ref.name}@{info['version']}"), workdir)
    return LoadedVersion(ref.name, int(info["version"]), digest, signature, predictor,
                         time.perf_counter() - started, str(info["flavor"]), str(info["artifact_format"]),
                         dict(info.get("lineage") or {}))


def _verify(path: Path, digest: str) -> None:
    actual, _size = files.sha256_file(path)
    if actual != digest:
        raise errors.DigestMismatch(digest, actual)


def platform_of(flavor: str) -> str:
    """The ``platform`` string OIP clients see in model metadata."""
    return {"sklearn": "scikit-learn", "onnx": "onnxruntime_onnx", "mlflow": "mlflow"}.get(flavor, flavor)
