"""Re-run a bundle's recorded inputs through a model artifact, step by step.

The artifact is loaded the way the serving process loaded it (``serving.predictors``: digest
first, pickles only when trusted) and the one recorded row is fed alone, as the serving
process fed it when it recorded the chain, so an unchanged model gives bit-identical steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from threadline import files
from threadline.domain import errors, models
from threadline.serving import predictors, tensors


def inputs_of(bundle: Mapping[str, Any], signature: models.Signature) -> dict[str, np.ndarray]:
    """The recorded row as a batch of one, in the signature's datatypes."""
    recorded = bundle["inputs"]
    batch = {}
    for spec in signature.inputs:
        if spec.name not in recorded:
            raise errors.InvalidInput(f"the bundle records no input {spec.name!r}, which the model needs",
                                      field=f"inputs.{spec.name}")
        batch[spec.name] = np.asarray([recorded[spec.name]], dtype=tensors.dtype_of(spec.datatype))
    return batch


def rerun(bundle: Mapping[str, Any], artifact: Path, *, digest: str, signature: models.Signature,
          artifact_format: str, trusted: bool, workdir: Path, label: str) -> list[dict[str, Any]]:
    """The decision chain of ``artifact`` (whose content must have ``digest``) on the recorded row."""
    actual, _size = files.sha256_file(artifact)
    if actual != digest:
        raise errors.DigestMismatch(digest, actual)
    predictor = predictors.load(predictors.LoadRequest(
        path=artifact, artifact_format=models.ArtifactFormat(artifact_format), trusted=trusted,
        signature=signature, label=label), workdir)
    return predictor.chain(inputs_of(bundle, signature))[0]
