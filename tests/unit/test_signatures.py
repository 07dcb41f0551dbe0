"""Signatures: the artifact's view of its inputs reconciled with the training columns."""

from __future__ import annotations

import pytest

from threadline.domain import errors
from threadline.domain.models import ArtifactFormat, Flavor, Signature, TensorSpec
from threadline.registry import signatures
from threadline.registry.flavors import Inspection

OUTPUTS = (TensorSpec("label", "INT64", (-1,)),)


def sklearn_inspection(*, names=None, n_features=None, fmt=ArtifactFormat.SKOPS) -> Inspection:
    return Inspection(Flavor.SKLEARN, fmt, names, n_features, (), OUTPUTS, "classification", (0, 1))


def columns(*names: str, datatype: str = "FP64") -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name, datatype, (-1,)) for name in names)


def test_input_signature_from_profile_follows_column_order() -> None:
    profile = {"row_count": 3, "columns": {"b": {"datatype": "INT64"}, "a": {"datatype": "BYTES"}}}
    assert signatures.input_signature_from_profile(profile) == (
        TensorSpec("b", "INT64", (-1,)), TensorSpec("a", "BYTES", (-1,)),
    )


def test_feature_names_take_the_models_order_and_the_datas_types() -> None:
    data = (TensorSpec("b", "INT64", (-1,)), TensorSpec("a", "FP32", (-1,)))
    signature = signatures.reconcile(sklearn_inspection(names=("a", "b"), n_features=2), data)
    assert signature == Signature(inputs=(data[1], data[0]), outputs=OUTPUTS, classes=(0, 1))


def test_feature_name_mismatch_lists_missing_and_unexpected_columns() -> None:
    inspection = sklearn_inspection(names=("a", "b"), n_features=2)
    with pytest.raises(errors.InvalidInput) as caught:
        signatures.reconcile(inspection, columns("a", "label", "c"))
    message = str(caught.value)
    assert "missing columns the model was fitted on: b" in message
    assert "unexpected columns: label, c" in message
    assert "exclude=['label', 'c']" in message


def test_feature_count_must_match_the_number_of_columns() -> None:
    inspection = sklearn_inspection(n_features=2)
    assert signatures.reconcile(inspection, columns("x", "y")).inputs == columns("x", "y")
    with pytest.raises(errors.InvalidInput, match="expects 2 features but .* has 3 columns"):
        signatures.reconcile(inspection, columns("x", "y", "label"))


def test_without_training_data_sklearn_names_become_fp64_inputs() -> None:
    signature = signatures.reconcile(sklearn_inspection(names=("a", "b"), n_features=2), None)
    assert signature.inputs == columns("a", "b")


def test_without_training_data_a_bare_feature_count_becomes_one_tensor() -> None:
    signature = signatures.reconcile(sklearn_inspection(n_features=4), ())
    assert signature.inputs == (TensorSpec("input-0", "FP64", (-1, 4)),)


def test_onnx_declared_inputs_win() -> None:
    declared = (TensorSpec("X", "FP32", (-1, 2)),)
    inspection = Inspection(
        Flavor.ONNX, ArtifactFormat.ONNX, None, 2, declared, OUTPUTS, "unknown", None)
    assert signatures.reconcile(inspection, None).inputs == declared
    assert signatures.reconcile(inspection, columns("x", "y")).inputs == declared
    with pytest.raises(errors.InvalidInput, match="expects 2 features"):
        signatures.reconcile(inspection, columns("x"))


def test_a_pickle_needs_training_data() -> None:
    inspection = sklearn_inspection(fmt=ArtifactFormat.PICKLE)
    assert signatures.reconcile(inspection, columns("x")).inputs == columns("x")
    with pytest.raises(errors.InvalidInput, match="pass training_data"):
        signatures.reconcile(inspection, None)
