"""The demo's model: scikit-learn's breast cancer data set and a logistic regression.

Why this data: it ships inside scikit-learn (nothing is downloaded), it is real, and the task
is binary, so a prediction's confidence means something and the unsure cases can go to a
person. The model sees the ten "worst" measurements of each case (the largest value the data
set records for each property of the cell nuclei), named without the prefix so that requests
stay short. Everything is seeded: every run trains the same model and sends the same traffic,
so a rerun finds the version it registered before, and the drift result is the same each time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from threadline import __version__

MODEL = "breast-cancer"
TEAM = "oncology-ml"
TARGET = "diagnosis"
POSITIVE = "malignant"
FEATURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
            "concave_points", "symmetry", "fractal_dimension")
DRIFTED = ("texture", "smoothness", "symmetry")  # as if a new scanner read them differently
NORMAL_ROWS = 300
DRIFTED_ROWS = 200
SEED = 0
ESCALATE_BELOW = 0.6  # predictions less confident than this go to a person


@dataclass(frozen=True)
class Demo:
    """The trained model with the data and the evaluation a developer would register it with."""

    model: Any                  # a fitted scikit-learn Pipeline
    train: pd.DataFrame         # features and the diagnosis
    test: pd.DataFrame
    population: pd.DataFrame    # the features of every case: what live traffic is drawn from
    metrics: dict[str, float]
    fairness: list[dict[str, Any]]


def build() -> Demo:
    """Load the data, hold out a quarter, train, and evaluate on the held-out cases."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    source = load_breast_cancer(as_frame=True)
    columns = {f"worst {name.replace('_', ' ')}": name for name in FEATURES}
    features = source.data[list(columns)].rename(columns=columns)
    diagnosis = pd.Series(source.target_names[source.target], name=TARGET, index=features.index)
    frame = features.join(diagnosis)
    train, test = train_test_split(frame, test_size=0.25, random_state=SEED, stratify=frame[TARGET])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train[list(FEATURES)], train[TARGET])
    return Demo(model, train.reset_index(drop=True), test.reset_index(drop=True), features,
                _metrics(model, test), _fairness(model, train, test))


def _metrics(model: Any, test: pd.DataFrame) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

    truth, predicted = test[TARGET], model.predict(test[list(FEATURES)])
    scores = model.predict_proba(test[list(FEATURES)])[:, list(model.classes_).index(POSITIVE)]
    return {"accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "precision": round(float(precision_score(truth, predicted, pos_label=POSITIVE)), 4),
            "recall": round(float(recall_score(truth, predicted, pos_label=POSITIVE)), 4),
            "roc_auc": round(float(roc_auc_score(truth == POSITIVE, scores)), 4)}


def _fairness(model: Any, train: pd.DataFrame, test: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy per group of two case factors, split at the training median.

    The data set carries no patient attributes (age, ethnicity, imaging site), so the groups
    are the factors it has; the card says so, and what a real evaluation would need.
    """
    from sklearn.metrics import accuracy_score

    results = []
    for attribute, feature, groups in (("tumour size", "area", ("smaller", "larger")),
                                       ("nucleus texture", "texture", ("smoother", "coarser"))):
        larger = test[feature] > train[feature].median()
        for group, members in zip(groups, (~larger, larger), strict=True):
            rows = test[members]
            value = accuracy_score(rows[TARGET], model.predict(rows[list(FEATURES)]))
            results.append({"attribute": attribute, "group": group, "metric": "accuracy",
                            "value": round(float(value), 4)})
    return results


def card(demo: Demo, data_uri: str) -> dict[str, Any]:
    """A model card with every field the ``high`` tier's production gate asks for."""
    held_out = "held-out quarter"
    return {
        "model_details": {
            "overview": "Flags breast cell samples as malignant or benign from ten measurements "
                        "of the cell nuclei in a digitised fine needle aspirate image.",
            "owners": [{"name": "Oncology ML team (dana)", "contact": "oncology-ml@example.com"}],
            "version_notes": "Threadline quickstart demo model.",
        },
        "intended_use": {
            "primary_uses": ["Ordering a cytology lab's work: unsure cases go to a person first"],
            "primary_users": ["cytopathologists"],
            "out_of_scope_uses": ["Diagnosis without a pathologist",
                                  "Images other than fine needle aspirate cytology"],
        },
        "factors": {"relevant_factors": ["tumour size", "nucleus texture", "scanner calibration"],
                    "evaluation_factors": ["tumour size", "nucleus texture"]},
        "metrics": {"performance_measures": list(demo.metrics),
                    "decision_thresholds": [f"below {ESCALATE_BELOW} confidence: a person"]},
        "evaluation_data": {"datasets": [{"name": f"breast-cancer-wisconsin, {held_out}",
                                          "description": f"{len(demo.test)} cases, stratified"}]},
        "training_data": {"datasets": [{"name": "breast-cancer-wisconsin, training split",
                                        "uri": data_uri,
                                        "description": f"{len(demo.train)} cases"}]},
        "quantitative_analysis": {
            "performance_metrics": [{"name": name, "value": value, "slice": held_out}
                                    for name, value in demo.metrics.items()],
            "fairness": demo.fairness,
        },
        "ethical_considerations": [{
            "name": "No patient attributes in the data set",
            "mitigation": "Groups are case factors: evaluate by age, ethnicity and site first"}],
        "caveats_and_recommendations": {
            "caveats": ["569 cases from one source (University of Wisconsin, 1995)",
                        "A demonstration, not a medical device"],
            "recommendations": ["Review every escalated case"]},
    }


def lineage() -> dict[str, Any]:
    """Where the version comes from. The training code is this module of the installed
    Threadline, so its commit is the module's content digest (there is no Git commit)."""
    code = Path(__file__).read_bytes()
    return {"code_repo": f"threadline {__version__}: threadline/quickstart/demo.py",
            "code_commit": hashlib.sha256(code).hexdigest()[:40],
            "feature_pipeline": "StandardScaler -> LogisticRegression",
            "tags": {"source": "threadline quickstart"}}


def traffic(demo: Demo) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normal cases, then cases whose DRIFTED features read one training standard deviation high."""
    rng = np.random.default_rng(SEED)
    normal = demo.population.iloc[rng.integers(0, len(demo.population), NORMAL_ROWS)]
    drifted = demo.population.iloc[rng.integers(0, len(demo.population), DRIFTED_ROWS)].copy()
    for feature in DRIFTED:
        drifted[feature] += demo.train[feature].std()
    return normal.reset_index(drop=True), drifted.reset_index(drop=True)


def infer_body(row: Mapping[str, float]) -> dict[str, Any]:
    """An Open Inference Protocol v2 request for one case: one FP64 input per feature."""
    return {"inputs": [{"name": name, "datatype": "FP64", "shape": [1], "data": [float(row[name])]}
                       for name in FEATURES]}
