"""Governance against a real control plane on SQLite and PostgreSQL: roles on every route,
MFA step-up, the approval workflow with separation of duties, policy changes, reports."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from support import ControlPlane
from threadline import Client
from threadline.domain import access, errors

FULL_CARD: dict[str, Any] = {
    "model_details": {"overview": "Iris species from petal and sepal sizes.",
                      "owners": [{"name": "risk team", "contact": "risk@example.com"}]},
    "intended_use": {"primary_uses": ["teaching"], "out_of_scope_uses": ["medical decisions"]},
    "factors": {"relevant_factors": ["measurement device"]},
    "metrics": {"performance_measures": ["accuracy"]},
    "evaluation_data": {"datasets": [{"name": "iris-test", "uri": "file:///data/test.parquet"}]},
    "training_data": {"datasets": [{"name": "iris-train", "uri": "file:///data/train.parquet"}]},
    "quantitative_analysis": {
        "performance_metrics": [{"name": "accuracy", "value": 0.97}],
        "fairness": [{"attribute": "site", "group": "a", "metric": "recall", "value": 0.95},
                     {"attribute": "site", "group": "b", "metric": "recall", "value": 0.91}]},
    "ethical_considerations": [{"name": "none known", "mitigation": "monitor drift"}],
    "caveats_and_recommendations": {"caveats": ["three species only"]},
}

DEPLOYMENT = """apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: iris-prod, environment: production, owner: risk}
spec:
  model: iris
  version: 1
  replicas: {min: 2, max: 4}
  resources: {cpu: "1", memory: 1Gi}
  monitoring:
    drift: {}
  escalation: {confidenceBelow: 0.6, queue: iris-review}
"""


class Team:
    """Users of one control plane, each with their own client and TOTP secret."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.admin = Client(plane.url, plane.token)
        self.secrets: dict[str, str] = {}
        self.used: dict[str, int] = {}

    def user(self, name: str, *roles: str, teams: tuple[str, ...] = ()) -> Client:
        self.admin.create_user(name, list(roles), list(teams))
        return Client(self.plane.url, self.admin.create_token("test", user=name)["token"])

    def enroll(self, name: str, client: Client) -> None:
        """Confirm with the previous step's code (one step of clock skew is allowed), which
        leaves this step's and the next step's codes for two step-up actions."""
        secret = client.mfa_enroll()["secret"]
        client.mfa_confirm(pyotp.TOTP(secret).at(time.time() - 30))
        self.secrets[name] = secret
        self.used[name] = 0

    def next_code(self, name: str) -> str:
        """A code newer than the last one used: this step's, then the next step's."""
        self.used[name] += 1
        assert self.used[name] <= 2, "only two fresh codes fit in the window"
        return pyotp.TOTP(self.secrets[name]).at(time.time() + 30 * (self.used[name] - 1))


def test_every_route_refuses_a_token_without_its_role(shared_plane: ControlPlane) -> None:
    team = Team(shared_plane)
    spec = httpx.get(shared_plane.url + "/api/v1/openapi.json", headers=shared_plane.auth()).json()
    all_roles = {role.value for role in access.Role}
    clients: dict[frozenset[str], Client] = {}
    before = sum(1 for e in team.admin.audit_entries(action="access.denied"))
    calls = 0
    for path, operations in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method, operation in operations.items():
            allowed = set(operation["x-roles"])
            assert allowed, (method, path)
            lacking = frozenset(all_roles - allowed)  # empty: a user with no role at all
            if lacking not in clients:
                clients[lacking] = team.user(f"r{len(clients)}", *sorted(lacking))
            response = clients[lacking]._http.request(method.upper(), concrete, json={})
            assert response.status_code == 403, (method, path, sorted(lacking), response.text)
            assert "lacks permission" in response.json()["error"]
            assert httpx.request(method.upper(), shared_plane.url + concrete).status_code == 401
            calls += 1
    assert calls >= 35
    denied = list(team.admin.audit_entries(action="access.denied"))
    assert len(denied) - before >= calls


def test_high_risk_model_reaches_production_only_with_full_evidence(
        control_plane: ControlPlane, iris_model: tuple[object, object], tmp_path: Path) -> None:
    model, features = iris_model
    team = Team(control_plane)
    dev = team.user("dana", "developer", teams=("risk",))
    ap1, ap2 = team.user("ann", "approver"), team.user("abe", "approver")
    dev_approver = team.user("dave", "developer", "approver", teams=("risk",))
    team.enroll("ann", ap1)
    team.enroll("abe", ap2)
    team.enroll("dave", dev_approver)

    # A developer of another team may not register versions of this model.
    outsider = team.user("olga", "developer", teams=("other",))
    with pytest.raises(errors.Forbidden, match="owned by team 'risk'"):
        outsider.register_model(model, "iris", owner="risk", risk="high")

    data = tmp_path / "train.parquet"
    features.to_parquet(data)  # type: ignore[attr-defined]
    dev.register_model(model, "iris", training_data=data, metrics={"accuracy": 0.97}, risk="high", owner="risk",
                       card={"model_details": {"overview": "first draft"}},
                       lineage={"code_repo": "https://git.example/iris", "code_commit": "abc123"})
    with pytest.raises(errors.Conflict, match="validate it first"):
        dev.request_approval("iris", 1, "production")
    dev.transition_version("iris", 1, "validate")
    report = dev.request_approval("iris", 1, "production", "ready for review")
    failing = {g["name"] for g in report["gates"] if g["outcome"] == "fail"}
    assert failing == {"card", "fairness", "approvals"}

    # Developers cannot approve; approvers need a fresh code; a code is accepted once.
    with pytest.raises(errors.Forbidden, match="lacks permission 'decide-approval'"):
        dev.decide("iris", 1, "production", "approve")
    with pytest.raises(errors.Forbidden, match="requires MFA"):
        ap1.decide("iris", 1, "production", "approve")
    code = team.next_code("ann")
    report = ap1.decide("iris", 1, "production", "approve", "looks fine", otp=code)
    assert "1 of 2 distinct MFA-verified approvers" in _gate(report, "approvals")["reason"]
    with pytest.raises(errors.Forbidden, match="already used"):
        ap1.decide("iris", 1, "production", "approve", otp=code)
    with pytest.raises(errors.Forbidden, match="ann has already approved iris@1"):
        ap1.decide("iris", 1, "production", "approve", otp=team.next_code("ann"))
    with pytest.raises(errors.Forbidden, match="wrong or expired"):
        ap2.decide("iris", 1, "production", "approve", otp="000000" if code != "000000" else "111111")

    # Separation of duties: whoever registered a version never approves it.
    dev_approver.register_model(model, "iris", metrics={"accuracy": 0.99})
    dev_approver.transition_version("iris", 2, "validate")
    dev_approver.request_approval("iris", 2, "production")
    with pytest.raises(errors.Forbidden, match="separation of duties"):
        dev_approver.decide("iris", 2, "production", "approve", otp=team.next_code("dave"))

    # Only the owning team edits the card; each edit is a new revision.
    with pytest.raises(errors.Forbidden, match="owned by team 'risk'"):
        outsider.edit_card("iris", 1, FULL_CARD)
    assert dev.edit_card("iris", 1, FULL_CARD)["revision"] == 2
    assert dev.get_version("iris", 1)["card"] == {"model_details": {"overview": "first draft"}}
    assert dev.get_card("iris", 1)["revision"] == 2

    # The second distinct MFA-verified approval completes the gates and approves the version.
    report = ap2.decide("iris", 1, "production", "approve", otp=team.next_code("abe"))
    assert report["passed"], report
    assert {g["name"]: g["outcome"] for g in report["gates"]}["monitoring"] == "deferred"
    assert dev.get_version("iris", 1)["status"] == "approved:production"

    # Withdrawing is a new record, and the gate fails again at once.
    ap1.decide("iris", 1, "production", "withdraw", "found a problem")
    assert not dev.check("iris", 1, "production")["passed"]
    assert [a["decision"] for a in dev.approvals("iris", 1)] == ["request", "approve", "approve", "withdraw"]

    audit = list(team.admin.audit_entries(object="model/iris/version/1"))
    actions = [e["action"] for e in audit]
    assert actions.count("approval.approve") == 2 and "approval.withdraw" in actions and "card.edit" in actions
    denied = list(team.admin.audit_entries(action="access.denied"))
    reasons = " ".join(e["details"]["reason"] for e in denied)
    assert "separation of duties" in reasons and "requires MFA" in reasons and "already used" in reasons


def _gate(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in report["gates"] if g["name"] == name)


def test_policy_changes_need_an_admin_with_a_fresh_code_and_bad_files_change_nothing(
        control_plane: ControlPlane) -> None:
    team = Team(control_plane)
    assert team.admin.get_policy()["version"] == 0
    stricter = team.admin.get_policy()["document"].replace("approvals: 2", "approvals: 3")
    with pytest.raises(errors.Forbidden, match="fresh TOTP code"):
        team.admin.set_policy(stricter)
    team.enroll("admin", team.admin)
    broken = "apiVersion: threadline/v1\nkind: GovernancePolicy\ntiers:\n  minimal:\n    production:\n      aprovals: 1\n"
    with pytest.raises(errors.InvalidInput, match=r"strict.yaml:6: tiers.minimal.production.aprovals: unknown field"):
        team.admin.set_policy(broken, source="strict.yaml", otp=team.next_code("admin"))
    assert team.admin.get_policy()["version"] == 0
    assert team.admin.set_policy(stricter, source="strict.yaml", otp=team.next_code("admin"))["version"] == 1
    in_force = team.admin.get_policy()
    assert in_force["version"] == 1 and in_force["parsed"]["tiers"]["high"]["production"]["approvals"] == 3
    developer = team.user("dana", "developer")
    with pytest.raises(errors.Forbidden, match="lacks permission 'manage-policy'"):
        developer.set_policy(stricter)
    assert [e["object"] for e in team.admin.audit_entries(action="policy.")] == ["policy/1"]


def test_roles_cannot_be_escalated_and_revoked_tokens_stop_working(control_plane: ControlPlane) -> None:
    team = Team(control_plane)
    developer = team.user("dana", "developer")
    with pytest.raises(errors.Forbidden, match="manage-users"):
        developer.update_user("dana", roles=["admin"])
    with pytest.raises(errors.Forbidden, match="manage-users"):
        developer.create_user("mallory", ["admin"])
    with pytest.raises(errors.Forbidden, match="only admins manage other users"):
        developer.create_token("stolen", user="admin")
    with pytest.raises(errors.InvalidInput, match="only admins may create tokens that never expire"):
        developer.create_token("forever", expires_in_days=None)
    with pytest.raises(errors.Forbidden, match="cannot disable yourself"):
        team.admin.update_user("admin", disabled=True)
    assert developer.whoami()["roles"] == ["developer"]

    second = developer.create_token("laptop", expires_in_days=7)
    laptop = Client(control_plane.url, second["token"])
    assert laptop.whoami()["user"] == "dana"
    assert second["token"] not in str(developer.list_tokens())
    developer.revoke_token(second["id"])
    with pytest.raises(errors.Unauthorized, match="revoked token"):
        laptop.whoami()
    team.admin.update_user("dana", disabled=True)
    with pytest.raises(errors.Unauthorized, match="disabled user"):
        developer.whoami()
    assert {e["action"] for e in team.admin.audit_entries(object="user/dana")} >= {
        "user.create", "user.update", "token.create", "token.revoke"}


def test_protected_alias_reports_and_attestations(
        control_plane: ControlPlane, iris_model: tuple[object, object], tmp_path: Path) -> None:
    model, _ = iris_model
    team = Team(control_plane)
    deployer = team.user("dora", "deployer")
    team.enroll("dora", deployer)
    team.admin.register_model(model, "iris", metrics={"accuracy": 0.97}, owner="default")
    team.admin.set_alias("iris", "champion", 1)  # not protected
    with pytest.raises(errors.Forbidden, match="moving alias 'production'.*fresh TOTP code"):
        deployer.set_alias("iris", "production", 1)
    with pytest.raises(errors.Forbidden, match="does not pass its gates: approvals: 0 of 1"):
        deployer.set_alias("iris", "production", 1, otp=team.next_code("dora"))

    markdown = deployer.get_card("iris", 1, format="markdown")
    assert markdown.startswith("# ") and "Not documented" in markdown
    assert "<html" in deployer.get_card("iris", 1, format="html").lower()
    report = deployer.compliance("iris", 1, deployment=DEPLOYMENT)
    controls = {(c["framework"], c["control_id"]): c["status"] for c in report["controls"]}
    assert controls[("EU AI Act", "Art. 14")] == "satisfied"  # the deployment's escalation config
    assert controls[("EU AI Act", "Art. 10")] == "missing"    # registered without training data
    assert controls[("EU AI Act", "Art. 12")] == "satisfied"  # the version's audit entries, counted
    assert "Art. 12" in deployer.compliance("iris", 1, format="markdown")

    checklist = deployer.readiness(DEPLOYMENT)
    items = {item["id"]: item["status"] for item in checklist["items"]}
    assert items["infrastructure.network_policy"] == "needs attestation" and not checklist["ready"]
    signed = deployer.attest(DEPLOYMENT, "infrastructure.network_policy", "default-deny NetworkPolicy in place")
    assert len(bytes.fromhex(signed["signature"])) == 64
    items = {item["id"]: item["status"] for item in deployer.readiness(DEPLOYMENT)["items"]}
    assert items["infrastructure.network_policy"] == "attested"
    with pytest.raises(errors.InvalidInput, match="automatically"):
        deployer.attest(DEPLOYMENT, "security.rate_limits", "trust me")
    viewer = team.user("vic", "viewer")
    with pytest.raises(errors.Forbidden, match="attest"):
        viewer.attest(DEPLOYMENT, "infrastructure.network_policy", "me too")


class _Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that fails the first delivery, to prove retries."""

    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(500 if len(self.received) == 1 else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_approval_events_are_signed_webhooks_retried_until_delivered(
        database_url: str, tmp_path: Path, iris_model: tuple[object, object]) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secret = "webhook-test-secret"
    plane = ControlPlane(home=tmp_path / "home", database_url=database_url, extra_env={
        "THREADLINE_WEBHOOK_URLS": f'["http://127.0.0.1:{receiver.server_port}/hook"]',
        "THREADLINE_WEBHOOK_SECRET": secret}).start()
    try:
        admin = Client(plane.url, plane.token)
        admin.register_model(iris_model[0], "iris", owner="default")
        admin.transition_version("iris", 1, "validate")
        admin.request_approval("iris", 1, "staging", "please")
        deadline = time.monotonic() + 20
        while len(_Receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        plane.stop()
        receiver.shutdown()
    assert len(_Receiver.received) == 2, plane.log()
    headers, body = _Receiver.received[1]
    assert headers["X-Threadline-Event"] == "approval.request"
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Threadline-Signature"], expected)
    assert _Receiver.received[0][1] == body  # the retry sends the same message
    assert json.loads(body)["model"] == "iris" and secret not in plane.log()
