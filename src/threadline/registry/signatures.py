"""Input and output signatures: what the model says it takes, checked against the data.

Two witnesses know a version's inputs: the artifact (feature names, a feature count, ONNX
graph inputs) and the training data (its profiled columns). ``reconcile`` makes them agree
or refuses the registration with a message saying which columns are wrong, so a serving
endpoint never validates requests against a schema the model cannot actually accept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from threadline.domain import errors, models

if TYPE_CHECKING:
    from threadline.registry import flavors


def input_signature_from_profile(profile: Mapping[str, Any]) -> tuple[models.TensorSpec, ...]:
    """One ``(-1,)`` tensor per profiled column, in column order."""
    return tuple(
        models.TensorSpec(name=name, datatype=column["datatype"], shape=(-1,))
        for name, column in profile["columns"].items()
    )


def reconcile(
    inspection: flavors.Inspection, profile_inputs: Sequence[models.TensorSpec] | None
) -> models.Signature:
    """The version's signature from the artifact and, when given, the training columns.

    With training data: feature names must match the columns as a set (the signature takes
    the model's order), a bare feature count must match their number. Inputs the model
    declares itself (ONNX graph inputs) always win, since they are what the runtime feeds.
    Without training data the model's own inputs are used; a model that declares none (a
    pickle) needs training data.
    """
    columns = tuple(profile_inputs or ())
    inputs = _checked_against_data(inspection, columns) if columns else _model_inputs(inspection)
    return models.Signature(inputs=inputs, outputs=inspection.outputs, classes=inspection.classes)


def _checked_against_data(
    inspection: flavors.Inspection, columns: tuple[models.TensorSpec, ...]
) -> tuple[models.TensorSpec, ...]:
    names = [spec.name for spec in columns]
    if inspection.feature_names is not None:
        _require_same_columns(inspection.feature_names, names)
        if inspection.inputs:
            return inspection.inputs
        by_name = {spec.name: spec for spec in columns}
        return tuple(by_name[name] for name in inspection.feature_names)
    if inspection.n_features is not None and inspection.n_features != len(columns):
        raise errors.InvalidInput(
            f"the model expects {inspection.n_features} features but the training data has "
            f"{len(columns)} columns ({', '.join(names)}); leave out non-feature columns such as "
            "the label with exclude=['label']",
            field="training_data",
        )
    return inspection.inputs or columns


def _require_same_columns(expected: Sequence[str], actual: Sequence[str]) -> None:
    expected_set, actual_set = set(expected), set(actual)
    missing = [name for name in expected if name not in actual_set]
    unexpected = [name for name in actual if name not in expected_set]
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"missing columns the model was fitted on: {', '.join(missing)}")
    if unexpected:
        parts.append(
            f"unexpected columns: {', '.join(unexpected)} "
            f"(if they are not features, e.g. the label, pass exclude={unexpected!r})"
        )
    raise errors.InvalidInput(
        "the training data does not match the model's features: " + "; ".join(parts),
        field="training_data",
    )


def _model_inputs(inspection: flavors.Inspection) -> tuple[models.TensorSpec, ...]:
    if inspection.inputs:
        return inspection.inputs
    if inspection.feature_names is not None:
        return tuple(models.TensorSpec(name, "FP64", (-1,)) for name in inspection.feature_names)
    if inspection.n_features is not None:
        return (models.TensorSpec("input-0", "FP64", (-1, inspection.n_features)),)
    raise errors.InvalidInput(
        f"the {inspection.artifact_format.value} artifact does not say which inputs the model "
        "takes: pass training_data so the signature can be derived from its columns",
        field="training_data",
    )
