"""Decision chains: every step of every row agrees with calling the fitted model directly, and
two runs give equal structures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingRegressor,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from threadline.bundles import chain
from threadline.domain.models import Signature, TensorSpec
from threadline.serving.predictors import OnnxPredictor, SklearnPredictor

X, Y = load_iris(return_X_y=True)
NAMES = np.array(["setosa", "versicolor", "virginica"])[Y]
ROWS = X[::15]  # ten rows, every class
XR, YR = make_regression(n_samples=120, n_features=4, noise=5.0, random_state=0)


def _by_name(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in steps}


def _assert_json_native(value: Any) -> None:
    """Plain JSON types only: orjson would serialise numpy scalars only with an option."""
    assert value is None or type(value) in (bool, int, float, str, list, dict), type(value)
    if isinstance(value, dict):
        assert all(type(key) is str for key in value)
        for item in value.values():
            _assert_json_native(item)
    elif isinstance(value, list):
        for item in value:
            _assert_json_native(item)


def test_pipeline_records_each_transform_and_the_prediction() -> None:
    model = Pipeline([("scale", StandardScaler()),
                      ("clf", LogisticRegression(max_iter=500))]).fit(X, NAMES)
    chains = chain.decision_chain(model, ROWS)

    scaled = model["scale"].transform(ROWS)
    probabilities, labels = model.predict_proba(ROWS), model.predict(ROWS)
    assert len(chains) == len(ROWS)
    for row, steps in enumerate(chains):
        assert [(s["step"], s["kind"]) for s in steps] == [("scale", "transform"),
                                                            ("clf", "predict")]
        assert steps[0]["output"] == [float(v) for v in scaled[row]]
        assert steps[1]["output"] == {"probabilities": [float(p) for p in probabilities[row]],
                                      "label": str(labels[row])}
        _assert_json_native(steps)


def test_chain_is_deterministic_and_serialisable() -> None:
    forest = RandomForestClassifier(n_estimators=15, random_state=0)
    model = make_pipeline(StandardScaler(), forest).fit(X, Y)
    first, second = chain.decision_chain(model, ROWS), chain.decision_chain(model, ROWS.copy())
    assert first == second
    assert orjson.dumps(first) == orjson.dumps(second)


def test_soft_voting_records_each_member() -> None:
    members = [("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))),
               ("forest", RandomForestClassifier(n_estimators=10, random_state=0)),
               ("unused", "drop")]
    model = VotingClassifier(members, voting="soft").fit(X, NAMES)
    chains = chain.decision_chain(model, ROWS)

    fitted = model.named_estimators_
    member_probabilities = {name: fitted[name].predict_proba(ROWS) for name in ("lr", "forest")}
    for row, steps in enumerate(chains):
        assert [(s["step"], s["kind"]) for s in steps] == [
            ("votingclassifier.lr", "member"), ("votingclassifier.forest", "member"),
            ("votingclassifier", "predict")]
        named = _by_name(steps)
        for name in ("lr", "forest"):
            expected = member_probabilities[name][row].tolist()
            assert named[f"votingclassifier.{name}"]["output"] == {"probabilities": expected}
        final = named["votingclassifier"]["output"]
        assert final["label"] == model.predict(ROWS)[row]
        assert final["probabilities"] == model.predict_proba(ROWS)[row].tolist()


def test_hard_voting_members_without_probabilities_give_decoded_labels() -> None:
    members = [("svc", make_pipeline(StandardScaler(), LinearSVC(random_state=0))),
               ("lr", LogisticRegression(max_iter=500))]
    model = VotingClassifier(members, voting="hard").fit(X, NAMES)
    steps = _by_name(chain.decision_chain(model, ROWS)[-1])

    # The members were fitted on encoded labels; the chain shows the ensemble's own labels.
    encoded = model.named_estimators_["svc"].predict(ROWS)[-1]
    assert steps["votingclassifier.svc"]["output"] == {"label": str(model.classes_[encoded])}
    assert set(steps["votingclassifier.lr"]["output"]) == {"probabilities"}
    assert steps["votingclassifier"]["output"] == {"label": str(model.predict(ROWS)[-1])}


def test_stacking_regressor_records_members_and_prediction() -> None:
    model = StackingRegressor([("ridge", Ridge()),
                               ("forest", RandomForestRegressor(n_estimators=10, random_state=0))],
                              final_estimator=Ridge()).fit(XR, YR)
    rows = XR[:5]
    for row, steps in enumerate(chain.decision_chain(model, rows)):
        named = _by_name(steps)
        for name in ("ridge", "forest"):
            expected = float(model.named_estimators_[name].predict(rows)[row])
            assert named[f"stackingregressor.{name}"] == {"step": f"stackingregressor.{name}",
                                                          "kind": "member",
                                                          "output": {"prediction": expected}}
        prediction = float(model.predict(rows)[row])
        assert named["stackingregressor"]["output"] == {"prediction": prediction}


def test_random_forest_classifier_records_votes_and_spread() -> None:
    model = RandomForestClassifier(n_estimators=25, max_depth=2, random_state=0).fit(X, NAMES)
    chains = chain.decision_chain(model, ROWS)

    per_tree = np.stack([tree.predict_proba(ROWS.astype(np.float32)) for tree in model.estimators_])
    for row, steps in enumerate(chains):
        assert [(s["step"], s["kind"]) for s in steps] == [
            ("randomforestclassifier.trees", "trees"), ("randomforestclassifier", "predict")]
        trees = steps[0]["output"]
        assert trees["n"] == 25
        assert set(trees["votes"]) == set(trees["mean"]) == set(trees["std"]) == set(model.classes_)
        assert sum(trees["votes"].values()) == 25
        winners = per_tree[:, row].argmax(axis=1)
        assert trees["votes"] == {label: int((winners == index).sum())
                                  for index, label in enumerate(model.classes_)}
        mean = [trees["mean"][label] for label in model.classes_]
        np.testing.assert_allclose(mean, model.predict_proba(ROWS)[row], rtol=0, atol=1e-12)
        assert steps[1]["output"]["probabilities"] == model.predict_proba(ROWS)[row].tolist()


def test_random_forest_regressor_records_the_spread_of_its_trees() -> None:
    model = RandomForestRegressor(n_estimators=20, max_depth=3, random_state=0).fit(XR, YR)
    rows = XR[:8]
    per_tree = np.stack([tree.predict(rows.astype(np.float32)) for tree in model.estimators_])
    for row, steps in enumerate(chain.decision_chain(model, rows)):
        trees = steps[0]["output"]
        assert steps[0]["kind"] == "trees"
        assert list(trees) == ["n", "mean", "std", "min", "p10", "p50", "p90", "max"]
        assert trees["n"] == 20
        assert trees["min"] <= trees["p10"] <= trees["p50"] <= trees["p90"] <= trees["max"]
        assert trees["min"] == float(per_tree[:, row].min())
        assert trees["std"] == float(per_tree.std(axis=0)[row])
        assert trees["mean"] == pytest.approx(float(model.predict(rows)[row]), abs=1e-9)
        assert steps[1]["output"] == {"prediction": float(model.predict(rows)[row])}


def test_gradient_boosting_classifier_records_stage_contributions() -> None:
    model = GradientBoostingClassifier(n_estimators=12, max_depth=2, random_state=0).fit(X, NAMES)
    chains = chain.decision_chain(model, ROWS)

    raw = model.decision_function(ROWS)
    for row, steps in enumerate(chains):
        trees = steps[0]["output"]
        assert steps[0]["step"] == "gradientboostingclassifier.trees"
        assert trees["n"] == 12
        assert set(trees) == {"n", "mean", "std", "min", "max", "init"}
        for index, label in enumerate(model.classes_):
            # The raw score is where the stages start plus every stage's contribution.
            total = trees["init"][label] + trees["n"] * trees["mean"][label]
            assert total == pytest.approx(raw[row, index], abs=1e-9)
            assert trees["min"][label] <= trees["mean"][label] <= trees["max"][label]
        assert steps[1]["output"]["label"] == model.predict(ROWS)[row]


def test_binary_boosting_and_boosted_regression_have_one_raw_score() -> None:
    binary = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X[Y < 2], Y[Y < 2])
    trees = chain.decision_chain(binary, X[:1])[0][0]["output"]
    assert isinstance(trees["mean"], float) and isinstance(trees["init"], float)
    raw = binary.decision_function(X[:1])[0]
    assert trees["init"] + 5 * trees["mean"] == pytest.approx(raw, abs=1e-9)

    regressor = GradientBoostingRegressor(n_estimators=7, random_state=0).fit(XR, YR)
    trees = chain.decision_chain(regressor, XR[:1])[0][0]["output"]
    raw = regressor.predict(XR[:1])[0]
    assert trees["init"] + 7 * trees["mean"] == pytest.approx(raw, abs=1e-9)


def test_sparse_transform_outputs_are_densified_per_row() -> None:
    colours = np.array([["red"], ["green"], ["blue"], ["green"]] * 10, dtype=object)
    target = np.arange(40) % 2
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(colours, target)
    steps = chain.decision_chain(model, colours[:3])
    assert [s[0]["output"] for s in steps] == [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


@pytest.mark.filterwarnings("error")  # a tree handed column names it was not fitted with warns
def test_dataframe_inputs_with_column_names() -> None:
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    model = Pipeline([
        ("columns", ColumnTransformer([("scale", StandardScaler(), ["sl", "pw"])],
                                      remainder="passthrough")),
        ("forest", RandomForestClassifier(n_estimators=5, random_state=0)),
    ]).fit(frame, NAMES)
    steps = chain.decision_chain(model, frame.iloc[:3])
    assert [s["kind"] for s in steps[0]] == ["transform", "trees", "predict"]
    assert steps[2][2]["output"]["label"] == model.predict(frame.iloc[:3])[2]

    plain = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, NAMES)
    assert chain.decision_chain(plain, frame.iloc[:3])[0][0]["output"]["n"] == 5


def test_json_native_converts_numpy_values_exactly() -> None:
    value = {1: np.float32(0.1), "b": np.array([True, False]), "c": (np.int64(7), np.str_("x"))}
    assert chain.json_native(value) == {"1": float(np.float32(0.1)), "b": [True, False],
                                        "c": [7, "x"]}
    with pytest.raises(Exception, match="cannot record"):
        chain.json_native(object())


def _signature(outputs: tuple[TensorSpec, ...]) -> Signature:
    return Signature(inputs=(TensorSpec("input-0", "FP64", (-1, 4)),), outputs=outputs)


def test_sklearn_predictor_chain_matches_decision_chain() -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
    outputs = (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP64", (-1, 3)))
    predictor = SklearnPredictor(model, _signature(outputs))
    assert predictor.chain({"input-0": ROWS}) == chain.decision_chain(model, ROWS)


def test_onnx_predictor_chain_has_one_step_per_row(tmp_path: Path) -> None:
    to_onnx = pytest.importorskip("skl2onnx").to_onnx
    model = LogisticRegression(max_iter=500).fit(X.astype(np.float32), Y)
    path = tmp_path / "model.onnx"
    path.write_bytes(to_onnx(model, X[:1].astype(np.float32)).SerializeToString())
    predictor = OnnxPredictor(path, Signature(inputs=(TensorSpec("X", "FP32", (-1, 4)),)))

    chains = predictor.chain({"X": ROWS.astype(np.float32)})
    results = predictor.predict({"X": ROWS.astype(np.float32)})
    assert len(chains) == len(ROWS)
    for row, steps in enumerate(chains):
        assert [(s["step"], s["kind"]) for s in steps] == [("model", "predict")]
        output = steps[0]["output"]
        assert set(output) == set(results) == {"output_label", "output_probability"}
        assert output["output_label"] == int(results["output_label"][row])
        # skl2onnx's ZipMap gives one {class: probability} per row; keys become strings.
        assert set(output["output_probability"]) == {"0", "1", "2"}
        _assert_json_native(steps)
