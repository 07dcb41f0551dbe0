"""The review pages: the queue, the bundle viewer with its decision chain, claim and resolve forms.

Bundles come in as a serving process hands them over: a draft built with the real decision-chain
code from a fitted scikit-learn pipeline, ingested, completed with the deployment's environment
and commit, and signed by the control plane.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from dashboard_support import Dashboard, csrf_of, dashboard
from starlette.testclient import TestClient

from threadline.artifacts import pack
from threadline.domain import access, models
from threadline.gitops import documents
from threadline.registry.requests import NewVersion
from threadline.serving.predictors import SklearnPredictor

pytestmark = pytest.mark.integration

ADMIN = access.system("dana")
COMMIT = "9f2c4e1b7a0d3c5e8f6a1b2c3d4e5f6a7b8c9d0e"
HOSTILE = "<script>alert('x')</script>"
SPEC = """apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: triage, environment: production, owner: default}
spec:
  model: triage-model
  version: 1
  escalation: {confidenceBelow: 0.9, queue: triage-review}
"""


@dataclass
class Seeded:
    board: Dashboard
    classes: tuple[str, ...]
    answers: dict[str, Any]  # bundle id -> the model's label
    tokens: dict[str, str]

    def client(self, user: str) -> TestClient:
        return self.board.signed_in(self.tokens[user])

    def task(self, bundle_id: str) -> models.ReviewTask:
        with self.board.services.store.reading() as tx:
            return tx.get_review_task(bundle_id)


def _register(board: Dashboard, name: str, estimator: Any, workdir: Path) -> models.ModelVersion:
    path, _ = pack.pack_model(estimator, workdir, None)
    stored = board.services.artifacts.put([path.read_bytes()])
    return board.services.registry.register_version(ADMIN, NewVersion(name, stored.digest, owner="default"))


def _draft(bundle_id: str, deployment: str, version: models.ModelVersion, estimator: Any, row: dict[str, float],
           reason: str | None = None) -> dict[str, Any]:
    """What ``serving.app._draft`` hands in for one escalated row."""
    predictor = SklearnPredictor(estimator, version.signature)
    inputs = {name: np.array([value]) for name, value in row.items()}
    outputs = predictor.predict(inputs)
    confidence = float(outputs["probabilities"][0].max())
    return {
        "id": bundle_id, "created": (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(),
        "deployment": deployment, "queue": None, "reason": reason or f"confidence {confidence:.4f} below 0.9",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "model": version.model, "version": version.version,
        "artifact_digest": version.artifact_digest, "artifact_format": version.artifact_format.value,
        "signature": models.signature_to_json(version.signature), "lineage": models.lineage_to_json(version.lineage),
        "request": {"id": "req-1", "parameters": {}, "rows": 1, "row": 0, "outputs": None},
        "inputs": {name: value[0].tolist() for name, value in inputs.items()},
        "steps": predictor.chain(inputs)[0],
        "outputs": {name: value[0].tolist() for name, value in outputs.items()},
        "confidence": confidence,
    }


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    from sklearn.ensemble import RandomForestClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    home = tmp_path_factory.mktemp("review")
    board = dashboard(home)
    data = pd.DataFrame(np.random.default_rng(7).normal(size=(300, 3)), columns=["a", "b", "c"])
    target = np.where(data["a"] + data["b"] > 0, "approve", "refer")
    voting = make_pipeline(StandardScaler(), VotingClassifier(
        [("lr", LogisticRegression()), ("rf", RandomForestClassifier(n_estimators=5, random_state=0))],
        voting="soft")).fit(data, target)
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=7, random_state=1)).fit(data, target)
    triage = _register(board, "triage-model", voting, home)
    trees = _register(board, "forest-model", forest, home)
    with board.services.store.writing() as tx:  # the deployment as the GitOps agent records it
        spec = documents.load_text(SPEC, "triage.yaml")[0].model_dump(mode="json", by_alias=True)
        tx.put_deployment(models.DeploymentRecord("triage", "production", spec, COMMIT, "Synced", "", (), {},
                                                  datetime.now(timezone.utc)))
    drafts = [_draft("case-1", "triage", triage, voting, {"a": 0.02, "b": -0.01, "c": 0.3}),
              _draft("case-2", "triage", triage, voting, {"a": -0.05, "b": 0.04, "c": 1.0}),
              _draft("case-3", "forest", trees, forest, {"a": 0.1, "b": -0.2, "c": 0.0}, reason=HOSTILE)]
    for draft in drafts:
        board.services.reviews.ingest(ADMIN, orjson.dumps(draft))
    tokens = {name: board.token_for(name, *roles) for name, roles in (
        ("rita", (access.Role.REVIEWER,)), ("rob", (access.Role.REVIEWER,)), ("dev", (access.Role.DEVELOPER,)),
        ("val", (access.Role.VIEWER,)))}
    tokens["admin"] = board.admin_token
    return Seeded(board, ("approve", "refer"), {d["id"]: d["outputs"]["label"] for d in drafts}, tokens)


def _other(seeded: Seeded, bundle_id: str) -> str:
    return next(c for c in seeded.classes if c != seeded.answers[bundle_id])


def test_the_queue_lists_open_cases_with_their_deployment_and_model(seeded: Seeded) -> None:
    page = seeded.client("rita").get("/review?queue=triage-review")
    assert page.status_code == 200
    assert "case-1" in page.text and "case-2" in page.text and "case-3" not in page.text  # another queue
    assert "triage-model v1" in page.text and ">triage<" in page.text
    assert re.search(r"2\s+open\s+cases\s+in queue triage-review", page.text)
    assert 'href="/review/case-1"' in page.text
    everything = seeded.client("rita").get("/review?status=all")
    assert "case-3" in everything.text and "forest-model v1" in everything.text
    with seeded.board.services.store.reading() as tx:
        listed = [e for e in tx.audit_entries(after=0, limit=10_000, action="review.listed")]
    assert listed and listed[-1].actor == "rita"


def test_a_bad_status_filter_is_a_400_page(seeded: Seeded) -> None:
    page = seeded.client("rita").get("/review?status=lost")
    assert page.status_code == 400 and "unknown status" in page.text


def test_the_bundle_page_shows_the_context_and_the_chain_in_order(seeded: Seeded) -> None:
    page = seeded.client("rita").get("/review/case-1")
    assert page.status_code == 200
    text = page.text
    positions = [text.index(f"<h3>{name} ") for name in ("standardscaler", "votingclassifier.lr, votingclassifier.rf",
                                                          "votingclassifier")]
    assert positions == sorted(positions)
    assert "3 features" in text and "2 members" in text and "P(approve)" in text and "P(refer)" in text
    assert f"label: {seeded.answers['case-1']}" in text
    assert "confidence 0." in text and " below 0.9" in text
    assert COMMIT in text and ">triage</a> in production" in text and "triage-review" in text
    key_id = seeded.board.services.signer.key_id
    assert f"verified with key {key_id}" in text and "NOT VALID" not in text
    assert '<option value="approve">approve</option>' in text and '<option value="refer">refer</option>' in text
    assert ">Claim</button>" in text and ">Resolve</button>" in text
    with seeded.board.services.store.reading() as tx:
        reads = tx.audit_entries(after=0, limit=10_000, action="bundle.read", object_prefix="bundle/case-1")
    assert reads and reads[-1].actor == "rita"


def test_tree_votes_are_a_table_and_hostile_text_is_escaped(seeded: Seeded) -> None:
    page = seeded.client("admin").get("/review/case-3")
    assert page.status_code == 200
    assert "7 trees" in page.text and "<th scope=\"col\">votes</th><th scope=\"col\">mean</th>" in page.text
    assert HOSTILE not in page.text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "environment unknown" in page.text


def test_a_reviewer_claims_then_overrides_and_the_label_becomes_feedback(seeded: Seeded) -> None:
    rita = seeded.client("rita")
    page = rita.get("/review/case-1")
    claimed = rita.post("/review/case-1/claim", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert claimed.status_code == 303 and claimed.headers["location"] == "/review/case-1"
    assert seeded.task("case-1").assignee == "rita"
    page = rita.get("/review/case-1")
    assert ">Claim</button>" not in page.text and ">Resolve</button>" in page.text
    right = _other(seeded, "case-1")
    comment = "borderline; policy says " + HOSTILE
    resolved = rita.post("/review/case-1/resolve", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "decision": "override", "label": right, "comment": comment})
    assert resolved.status_code == 303
    task = seeded.task("case-1")
    assert (task.status, task.decision, task.label, task.resolved_by) == ("resolved", "override", right, "rita")
    with seeded.board.services.store.reading() as tx:
        record = tx.get_bundle("case-1")
        labels = tx.feedback("triage", record.created - timedelta(seconds=1), record.created + timedelta(seconds=1))
    assert [(f.prediction_id, f.label, f.source) for f in labels] == [("case-1", right, "review")]
    shown = rita.get("/review/case-1").text
    assert "override" in shown and "&lt;script&gt;" in shown and HOSTILE not in shown
    assert ">Resolve</button>" not in shown


def test_an_override_needs_a_label(seeded: Seeded) -> None:
    rob = seeded.client("rob")
    page = rob.get("/review/case-2")
    answer = rob.post("/review/case-2/resolve", data={"csrf_token": csrf_of(page.text), "decision": "override",
                                                      "label": "", "comment": ""})
    assert answer.status_code == 400 and "needs the right label" in answer.text
    assert seeded.task("case-2").status == "open"


def test_a_case_claimed_by_another_reviewer_is_refused_until_an_admin_takes_it_over(seeded: Seeded) -> None:
    rob = seeded.client("rob")
    rob.post("/review/case-2/claim", data={"csrf_token": csrf_of(rob.get("/review/case-2").text)})
    assert seeded.task("case-2").assignee == "rob"
    rita = seeded.client("rita")
    page = rita.get("/review/case-2")
    assert "rob is working on this case" in page.text and ">Resolve</button>" not in page.text
    token = csrf_of(page.text)
    refused = rita.post("/review/case-2/resolve", data={"csrf_token": token, "decision": "accept"})
    assert refused.status_code == 409 and "claimed by rob" in refused.text
    assert rita.post("/review/case-2/claim", data={"csrf_token": token}).status_code == 409
    assert rita.post("/review/case-2/claim", data={"csrf_token": token, "take_over": "yes"}).status_code == 403
    admin = seeded.client("admin")
    page = admin.get("/review/case-2")
    assert ">Take over</button>" in page.text
    taken = admin.post("/review/case-2/claim", data={"csrf_token": csrf_of(page.text), "take_over": "yes"},
                       follow_redirects=False)
    assert taken.status_code == 303 and seeded.task("case-2").assignee == "admin"
    accepted = admin.post("/review/case-2/resolve", data={"csrf_token": csrf_of(page.text), "decision": "accept"},
                          follow_redirects=False)
    assert accepted.status_code == 303
    assert (seeded.task("case-2").decision, seeded.task("case-2").label) == ("accept", seeded.answers["case-2"])


def test_roles_without_review_rights_are_refused(seeded: Seeded) -> None:
    dev = seeded.client("dev")
    page = dev.get("/review/case-3")
    assert page.status_code == 200 and ">Claim</button>" not in page.text  # may read, not review
    refused = dev.post("/review/case-3/claim", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403 and "review" in refused.text
    assert seeded.task("case-3").status == "open"
    assert seeded.client("val").get("/review").status_code == 403
    assert seeded.client("val").get("/review/case-3").status_code == 403


def test_forms_without_their_csrf_secret_are_refused(seeded: Seeded) -> None:
    rita = seeded.client("rita")
    assert rita.post("/review/case-3/claim", data={}).status_code == 403
    assert rita.post("/review/case-3/resolve", data={"csrf_token": "forged", "decision": "accept"}).status_code == 403
    assert seeded.task("case-3").status == "open"


def test_an_unknown_bundle_is_a_404_page_naming_it(seeded: Seeded) -> None:
    rita = seeded.client("rita")
    page = rita.get("/review/no-such-case")
    assert page.status_code == 404 and "no-such-case" in page.text
    token = csrf_of(rita.get("/review").text)
    assert rita.post("/review/no-such-case/claim", data={"csrf_token": token}).status_code == 404
