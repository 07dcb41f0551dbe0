"""The model pages over real services: the list and its filter, a model with versions, lineage,
card, gates and approvals, hostile text escaped, missing things as 404 pages, and an approver's
decision from the browser with MFA step-up (refused without the role, the CSRF secret or a
valid TOTP code)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pyotp
import pytest
import skops.io
from dashboard_support import Dashboard, csrf_of, dashboard
from starlette.testclient import TestClient

from threadline.domain import access, lifecycle, models
from threadline.gitops import state
from threadline.gitops.model import Revision, Workload
from threadline.gitops.spec import Serving
from threadline.registry.requests import NewModel, NewVersion

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert('x')</script>"
TRAIN = models.DataRef("s3://lake/fraud/2026-10/train.parquet", "ab" * 32)
COMMIT = "9f2c1e7d4b5a69788e0f1d2c3b4a59687766aa01"


@dataclass
class World:
    board: Dashboard
    ann_token: str
    ann_secret: str
    rita_token: str

    def approvals(self) -> list[tuple[str, str, bool]]:
        return [(a.decision.value, a.actor, a.mfa) for a in self.board.services.governance.approvals("fraud", 2)]


def _deploy(board: Dashboard, name: str, stable: int, canary: int, weight: int) -> None:
    """A deployment record as the agent writes it: the spec from Git and the workload it applied."""
    revision = {n: Revision("fraud", n, board.services.registry.get_version("fraud", n).artifact_digest)
                for n in (stable, canary)}
    applied = Workload(key=(name, "production"), stable=revision[stable], replicas=2, serving=Serving(),
                       canary=revision[canary], canary_weight=weight)
    spec = {"apiVersion": "threadline/v1", "kind": "ModelDeployment",
            "metadata": {"name": name, "environment": "production", "owner": "risk"},
            "spec": {"model": "fraud", "version": canary}}
    with board.services.store.writing() as tx:
        tx.put_deployment(models.DeploymentRecord(
            name, "production", spec, "c0ffee", "Progressing", "canary at step 1", (),
            state.to_json(state.DeploymentState(applied=applied)), datetime.now(timezone.utc)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, iris_model: tuple[object, object]) -> World:
    home = tmp_path_factory.mktemp("models")
    board = dashboard(home / "home")
    services = board.services
    path = home / "model.skops"
    skops.io.dump(iris_model[0], path)
    digest = services.artifacts.put([path.read_bytes()]).digest

    dana = access.Actor("dana", frozenset({access.Role.DEVELOPER}), frozenset({"risk"}))
    board.token_for("dana", access.Role.DEVELOPER, teams=("risk",))
    card = {"model_details": {"overview": f"Scores card payments. {HOSTILE}",
                              "owners": [{"name": "risk team", "contact": "risk@example.com"}]},
            "intended_use": {"primary_uses": ["fraud triage"], "out_of_scope_uses": ["credit decisions"]},
            "quantitative_analysis": {"performance_metrics": [{"name": "recall", "value": 0.91,
                                                               "confidence_interval": [0.89, 0.93]}]}}
    lineage = models.Lineage(training_data=(TRAIN,), code_repo="https://git.example.com/risk/fraud",
                             code_commit=COMMIT)
    for accuracy in (0.93, 0.95):
        services.registry.register_version(dana, NewVersion(
            "fraud", digest, owner="risk", risk_tier=models.RiskTier.HIGH, description=f"Fraud scorer {HOSTILE}",
            metrics={"accuracy": accuracy}, card=card, lineage=lineage))
    services.registry.create_model(dana, NewModel("churn", "risk", models.RiskTier.MINIMAL, "Who leaves next"))
    services.registry.set_alias(dana, "fraud", "champion", 1)
    services.registry.transition(dana, "fraud", 2, lifecycle.Event.VALIDATE)
    services.governance.request(dana, "fraud", 2, "production", f"ready {HOSTILE}")
    _deploy(board, "fraud-scorer", stable=1, canary=2, weight=10)

    ann_token = board.token_for("ann", access.Role.APPROVER)
    ann = access.Actor("ann", frozenset({access.Role.APPROVER}))
    secret = services.mfa.enroll(ann).secret
    services.mfa.confirm(ann, pyotp.TOTP(secret).at(time.time() - 30))  # leaves this step's code unused
    return World(board, ann_token, secret, board.token_for("rita", access.Role.REVIEWER))


def _decide(client: TestClient, **fields: str) -> object:
    page = client.get("/models/fraud?version=2")
    data = {"csrf_token": csrf_of(page.text), "environment": "production", "decision": "approve", **fields}
    return client.post("/models/fraud/versions/2/approvals", data=data, follow_redirects=False)


def test_the_list_shows_each_model_with_its_latest_version_and_filters(world: World) -> None:
    client = world.board.signed_in()
    page = client.get("/models")
    assert page.status_code == 200
    assert '<a href="/models/fraud">fraud</a>' in page.text and '<a href="/models/churn">churn</a>' in page.text
    assert "risk-high" in page.text and "v2" in page.text and "validated" in page.text
    assert "<code>champion</code> → v1" in page.text and "none yet" in page.text
    assert HOSTILE not in page.text and "Fraud scorer &lt;script&gt;" in page.text

    found = client.get("/models", params={"q": "leaves"})
    assert "/models/churn" in found.text and "/models/fraud" not in found.text
    hostile = client.get("/models", params={"q": HOSTILE})  # found in fraud's description
    assert hostile.status_code == 200 and HOSTILE not in hostile.text
    assert 'value="&lt;script&gt;' in hostile.text and "/models/fraud" in hostile.text
    nothing = client.get("/models", params={"q": "no such words"})
    assert "No model's name or description contains “no such words”" in nothing.text
    assert client.get("/models", params={"q": "x" * 201}).status_code == 400


def test_the_model_page_shows_versions_lineage_card_gates_and_approvals(world: World) -> None:
    page = world.board.signed_in().get("/models/fraud")
    assert page.status_code == 200
    text = page.text
    assert HOSTILE not in text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    digest = world.board.services.registry.get_version("fraud", 2).artifact_digest
    assert f'title="sha256:{digest}">{digest[:12]}</code>' in text
    assert '<a href="?version=2" aria-current="page">v2</a>' in text and "accuracy 0.95" in text
    # Lineage: the dataset and the commit feed both versions; the deployment runs both (canary at 10%).
    assert '<svg class="lineage"' in text and "train.parquet" in text and COMMIT[:12] in text
    assert 'class="edge-label"' in text and ">10%<" in text and ">fraud-scorer<" in text
    assert '<a href="/deployments/production/fraud-scorer">fraud-scorer</a>' in text and "90%" in text
    # The card, section by section, gaps named.
    assert "<h4>Overview</h4>" in text and "Scores card payments." in text and "0.89 – 0.93" in text
    assert "risk@example.com" in text and "Not documented" in text
    # Gates per environment, with why.
    assert "<h3>production" in text and "<h3>staging" in text
    assert "0 of 2 distinct MFA-verified approvers" in text and "accuracy 0.95 meets accuracy &gt;= 0.9" in text
    # The open request, and the admin (an approver who did not register it) may decide it.
    assert "requested by dana" in text and "ready &lt;script&gt;" in text
    assert 'action="/models/fraud/versions/2/approvals"' in text and 'name="otp"' in text


def test_focusing_an_older_version_and_missing_things(world: World) -> None:
    client = world.board.signed_in()
    older = client.get("/models/fraud", params={"version": 1})
    assert older.status_code == 200 and '<a href="?version=1" aria-current="page">v1</a>' in older.text
    assert "Version 1" in older.text and "Decisions on v1" in older.text

    missing = client.get("/models/no-such-model")
    assert missing.status_code == 404 and "no-such-model" in missing.text and "Not found" in missing.text
    absent = client.get("/models/fraud", params={"version": 9})
    assert absent.status_code == 404 and "no version 9" in absent.text
    assert client.get("/models/fraud", params={"version": "two"}).status_code == 400
    hostile = client.get("/models/" + HOSTILE)
    assert hostile.status_code in (400, 404) and HOSTILE not in hostile.text


def test_a_reviewer_sees_no_decision_form_and_is_refused_on_the_server(world: World) -> None:
    client = world.board.signed_in(world.rita_token)
    page = client.get("/models/fraud?version=2")
    assert page.status_code == 200 and 'class="decide"' not in page.text
    before = world.approvals()
    refused = _decide(client, otp=pyotp.TOTP(world.ann_secret).now())
    assert refused.status_code == 403 and "lacks permission" in refused.text
    assert world.approvals() == before


def test_a_decision_without_the_csrf_secret_is_refused(world: World) -> None:
    client = world.board.signed_in(world.ann_token)
    before = world.approvals()
    answer = client.post("/models/fraud/versions/2/approvals",
                         data={"environment": "production", "decision": "approve"}, follow_redirects=False)
    assert answer.status_code == 403 and "security token" in answer.text
    assert world.approvals() == before


def test_a_wrong_totp_code_or_decision_is_refused_with_a_clear_page(world: World) -> None:
    client = world.board.signed_in(world.ann_token)
    totp = pyotp.TOTP(world.ann_secret)
    valid = {totp.at(time.time() + 30 * step) for step in (-1, 0, 1)}
    wrong = next(code for code in ("123456", "654321", "111111", "222222") if code not in valid)
    before = world.approvals()
    refused = _decide(client, otp=wrong)
    assert refused.status_code == 403 and "TOTP code refused: wrong or expired code" in refused.text
    assert _decide(client, decision="applaud").status_code == 400
    assert world.approvals() == before


def test_an_approver_approves_with_a_fresh_totp_code(world: World) -> None:
    client = world.board.signed_in(world.ann_token)
    answer = _decide(client, otp=pyotp.TOTP(world.ann_secret).now(), comment="checked the card")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/models/fraud?version=2#approvals"
    assert ("approve", "ann", True) in world.approvals()
    page = client.get(answer.headers["location"])
    assert "Approved so far by ann" in page.text and "checked the card" in page.text
    assert "1 of 2 distinct MFA-verified approvers: needs 1 more" in page.text


def test_the_registrant_gets_no_form_for_their_own_version(world: World) -> None:
    services = world.board.services
    token = world.board.token_for("dora", access.Role.DEVELOPER, access.Role.APPROVER, teams=("risk",))
    dora = access.Actor("dora", frozenset({access.Role.DEVELOPER, access.Role.APPROVER}), frozenset({"risk"}))
    digest = services.registry.get_version("fraud", 1).artifact_digest
    services.registry.register_version(dora, NewVersion("churn", digest))
    services.registry.transition(dora, "churn", 1, lifecycle.Event.VALIDATE)
    services.governance.request(dora, "churn", 1, "production")
    page = world.board.signed_in(token).get("/models/churn")
    assert "requested by dora" in page.text and 'class="decide"' not in page.text
    assert "separation of duties leaves the decision to another approver" in page.text
