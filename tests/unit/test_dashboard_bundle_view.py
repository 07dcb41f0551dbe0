"""The bundle viewer's layout of real decision chains: members side by side, tree statistics per
class, probabilities named by class, and anything of another shape kept as JSON."""

from __future__ import annotations

import numpy as np
import orjson
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from threadline.bundles import chain
from threadline.dashboard import bundle_view
from threadline.dashboard.bundle_view import Row, Table

X, Y = load_iris(return_X_y=True)
NAMES = np.array(["setosa", "versicolor", "virginica"])[Y]
CLASSES = ["setosa", "versicolor", "virginica"]


def test_members_share_one_table_between_the_transform_and_the_prediction() -> None:
    model = make_pipeline(StandardScaler(), VotingClassifier(
        [("lr", LogisticRegression(max_iter=500)), ("svc", LinearSVC())], voting="hard")).fit(X, NAMES)
    steps = chain.decision_chain(model, X[:1])[0]
    blocks = bundle_view.chain_blocks(steps, CLASSES)
    assert [(b.kind, b.steps) for b in blocks] == [
        ("transform", ("standardscaler",)),
        ("member", ("votingclassifier.lr", "votingclassifier.svc")),
        ("predict", ("votingclassifier",))]
    transform, members, predict = blocks
    assert transform.summary == "4 features" and transform.table is not None
    assert transform.table.columns == ("1", "2", "3", "4")
    assert transform.table.rows[0].cells == tuple(steps[0]["output"])
    assert members.table is not None and members.summary == "2 members"
    assert members.table.columns == ("P(setosa)", "P(versicolor)", "P(virginica)", "label")
    lr, svc = members.table.rows
    assert lr.header == "votingclassifier.lr" and lr.cells[:3] == tuple(steps[1]["output"]["probabilities"])
    assert lr.cells[3] is None and svc.cells == (None, None, None, "setosa")  # LinearSVC has no probabilities
    assert predict.summary == "label: setosa" and predict.table is None  # hard voting: a label only


def test_tree_statistics_are_a_row_per_class_with_votes_first() -> None:
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, NAMES)
    steps = chain.decision_chain(model, X[60:61])[0]
    trees = bundle_view.chain_blocks(steps, CLASSES)[0]
    assert trees.kind == "trees" and trees.summary == "5 stages" and trees.table is not None
    assert trees.table.corner == "class" and trees.table.columns == ("mean", "std", "min", "max", "init")
    assert [row.header for row in trees.table.rows] == CLASSES
    assert trees.table.rows[1].cells[0] == steps[0]["output"]["mean"]["versicolor"]
    votes = bundle_view.chain_blocks([{"step": "f.trees", "kind": "trees", "output": {
        "n": 3, "mean": {"a": 0.6, "b": 0.4}, "votes": {"a": 2, "b": 1}}}], None)[0]
    assert votes.table == Table("class", ("votes", "mean"), (Row("a", (2, 0.6)), Row("b", (1, 0.4))))


def test_a_regression_forest_is_one_row_of_statistics() -> None:
    XR, YR = make_regression(n_samples=60, n_features=3, random_state=0)
    model = RandomForestRegressor(n_estimators=4, random_state=0).fit(XR, YR)
    steps = chain.decision_chain(model, XR[:1])[0]
    trees, predict = bundle_view.chain_blocks(steps, None)
    assert trees.table is not None and trees.table.rows[0].header == "all"
    assert trees.table.columns == ("mean", "std", "min", "p10", "p50", "p90", "max")
    assert predict.summary == f"prediction: {steps[-1]['output']['prediction']}" and predict.table is None


def test_probabilities_are_named_by_class_or_position() -> None:
    output = {"probabilities": [0.2, 0.8], "label": "b"}
    named = bundle_view.chain_blocks([{"step": "m", "kind": "predict", "output": output}], ["a", "b"])[0]
    assert named.table == Table("class", ("probability",), (Row("a", (0.2,)), Row("b", (0.8,))))
    unnamed = bundle_view.facts(output, None)
    assert unnamed == Table("name", ("value",), (Row("probability of #0", (0.2,)), Row("probability of #1", (0.8,)),
                                                 Row("label", ("b",))))


def test_other_shapes_are_shown_as_json_not_dropped() -> None:
    odd = [{"step": "x", "kind": "predict", "output": {"probabilities": [[0.1, 0.9]], "label": "b"}},
           {"step": "m1", "kind": "member", "output": [1, 2]}]
    predict, members = bundle_view.chain_blocks(odd, ["a", "b"])
    assert predict.table is None and predict.raw is not None and orjson.loads(predict.raw) == odd[0]["output"]
    assert members.raw is not None and orjson.loads(members.raw) == [odd[1]]
    nested = bundle_view.facts({"image": [[1, 2], [3, 4]]}, None)
    assert nested.rows == (Row("image", ("[[1,2],[3,4]]",)),)


def test_a_wide_transform_shows_its_first_columns() -> None:
    step = {"step": "onehot", "kind": "transform", "output": [0.0] * 80}
    block = bundle_view.chain_blocks([step], None)[0]
    assert block.table is not None and len(block.table.columns) == bundle_view.VECTOR_COLUMNS
    assert block.summary == f"80 features, the first {bundle_view.VECTOR_COLUMNS} shown"


def test_the_answer_a_reviewer_accepts() -> None:
    assert bundle_view.answer({"probabilities": [0.3, 0.7], "label": "b"}, "classification") == "b"
    assert bundle_view.answer({"prediction": 4.5}, "regression") == 4.5
    assert bundle_view.answer({}, "regression") is None
