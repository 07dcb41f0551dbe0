"""The readiness checklist: each item from spec and facts, attestations only where nothing can check."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from threadline.domain import errors, models
from threadline.gitops import spec
from threadline.governance import readiness, report_render

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
MODEL = models.Model(name="fraud-model", owner="risk-team", risk_tier=models.RiskTier.HIGH,
                     description="", created_by="alice", created_at=NOW)
GOOD_SPEC: dict[str, Any] = {
    "model": "fraud-model", "version": 7,
    "replicas": {"min": 2, "max": 4},
    "resources": {"cpu": "2", "memory": "4Gi"},
    "monitoring": {"drift": {"method": "psi", "threshold": 0.2},
                   "retrain": {"webhook": "https://hooks.example.com/retrain"}},
    "escalation": {"confidenceBelow": 0.6, "queue": "fraud-review"},
    "serving": {"rateLimit": 50.0},
}


def deployment(environment: str = "production", **changes: Any) -> spec.ModelDeployment:
    body = {key: value for key, value in {**GOOD_SPEC, **changes}.items() if value is not None}
    return spec.ModelDeployment.model_validate({
        "apiVersion": "threadline/v1", "kind": "ModelDeployment",
        "metadata": {"name": "fraud-scorer", "environment": environment, "owner": "risk-team"},
        "spec": body})


def facts(**changes: Any) -> readiness.Facts:
    good = readiness.Facts(deployment=deployment(), model=MODEL, version=None, card_complete=True,
                           lineage_complete=True, audit_retention_days=2555, policy_min_retention_days=2555,
                           tls=True, tracing=True, measured_minutes=600, autoscaled=3)
    return dataclasses.replace(good, **changes)


def item(checklist: readiness.Checklist, item_id: str) -> readiness.Item:
    [found] = [i for i in checklist.items if i.id == item_id]
    return found


def attest(item_id: str, comment: str = "default deny in namespace ml-serving",
           time: datetime = NOW) -> readiness.Attestation:
    return readiness.Attestation(item_id=item_id, actor="dana", time=time, comment=comment, signature="00" * 64)


ALL_ATTESTED = [attest(item_id) for item_id in sorted(readiness.ATTESTABLE)]


def test_a_good_deployment_passes_every_automatic_item() -> None:
    checklist = readiness.evaluate(facts())
    automatic = {i.id: i.status for i in checklist.items if i.id not in readiness.ATTESTABLE}
    assert set(automatic.values()) == {"pass"}, automatic
    assert {i.status for i in checklist.items if i.id in readiness.ATTESTABLE} == {"needs attestation"}
    assert not checklist.ready  # attestations still outstanding
    assert [category for category, _ in checklist.by_category()] == list(readiness.CATEGORIES)
    assert checklist.deployment == ("fraud-scorer", "production") and checklist.version == 7
    assert readiness.ATTESTABLE == {"infrastructure.network_policy"}


def test_attested_items_count_and_make_it_ready() -> None:
    checklist = readiness.evaluate(facts(), ALL_ATTESTED)
    assert checklist.ready
    assert checklist.counts == {"pass": len(checklist.items) - 1, "fail": 0, "needs attestation": 0,
                                "attested": 1}
    network = item(checklist, "infrastructure.network_policy")
    assert network.status == "attested" and network.attestation is not None
    assert "dana" in network.detail and "2025-03-01" in network.detail and "namespace ml-serving" in network.detail


def test_the_latest_attestation_of_an_item_wins() -> None:
    later = attest("infrastructure.network_policy", "default deny, reviewed", NOW + timedelta(days=1))
    checklist = readiness.evaluate(facts(), [later, attest("infrastructure.network_policy", "older")])
    assert "default deny, reviewed" in item(checklist, "infrastructure.network_policy").detail


@pytest.mark.parametrize(("changes", "item_id", "expected"), [
    ({"autoscaled": 0}, "infrastructure.autoscaling", "has not scaled this deployment in 30 days"),
    ({"measured_minutes": 0}, "observability.cost_tracking", "no utilization measured in the last 7 days"),
])
def test_untested_autoscaling_and_unmeasured_cost_fail(changes: dict[str, int], item_id: str, expected: str) -> None:
    found = item(readiness.evaluate(facts(**changes)), item_id)
    assert found.status == "fail" and expected in found.detail


@pytest.mark.parametrize("item_id", ["security.rate_limits", "infrastructure.replicas"])
def test_attesting_an_automatic_item_is_refused(item_id: str) -> None:
    with pytest.raises(errors.InvalidInput, match=f"{item_id} is checked automatically"):
        readiness.evaluate(facts(), [attest(item_id)])
    with pytest.raises(errors.InvalidInput, match="checked automatically"):
        readiness.attestation_message(("fraud-scorer", "production"), item_id, "dana", NOW, "")


def test_attesting_an_unknown_item_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="no checklist item 'infrastructure.magic'"):
        readiness.evaluate(facts(), [attest("infrastructure.magic")])


FAILURES = [
    ("infrastructure.replicas", {"replicas": {"min": 1, "max": 4}}, "spec.replicas.min is 1"),
    ("infrastructure.health_checks", {"health": {"maxErrorRate": None}}, "neither maxErrorRate"),
    ("infrastructure.resources", {"resources": None}, "does not set both cpu and memory"),
    ("infrastructure.gpu_isolation", {"resources": {"cpu": "2", "memory": "4Gi", "gpu": 1}}, "nodeSelector"),
    ("observability.drift", {"monitoring": {"retrain": GOOD_SPEC["monitoring"]["retrain"]}}, "spec.monitoring.drift"),
    ("observability.alerts", {"monitoring": {"drift": {}}}, "no alert route"),
    ("security.rate_limits", {"serving": None}, "rateLimit is 0"),
    ("compliance.escalation", {"escalation": None}, "spec.escalation"),
]


@pytest.mark.parametrize(("item_id", "changes", "says"), FAILURES, ids=[f[0] for f in FAILURES])
def test_each_spec_item_fails_with_a_fix(item_id: str, changes: dict[str, Any], says: str) -> None:
    checklist = readiness.evaluate(facts(deployment=deployment(**changes)), ALL_ATTESTED)
    failed = {i.id: i for i in checklist.items if i.status == "fail"}
    assert list(failed) == [item_id]
    assert says in failed[item_id].detail
    assert not checklist.ready


@pytest.mark.parametrize(("item_id", "changes", "says"), [
    ("observability.tracing", {"tracing": False}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ("security.tls", {"tls": False}, "without TLS"),
    ("compliance.model_card", {"card_complete": False}, "fraud-model@7"),
    ("compliance.lineage", {"lineage_complete": False}, "--lineage"),
    ("compliance.audit_retention", {"audit_retention_days": 30}, "kept 30 days; the policy requires 2555"),
])
def test_each_fact_item_fails_with_a_fix(item_id: str, changes: dict[str, Any], says: str) -> None:
    checklist = readiness.evaluate(facts(**changes), ALL_ATTESTED)
    assert [i.id for i in checklist.items if i.status == "fail"] == [item_id]
    assert says in item(checklist, item_id).detail


def test_outside_production_one_replica_and_no_escalation_below_high_risk_pass() -> None:
    limited = dataclasses.replace(MODEL, risk_tier=models.RiskTier.LIMITED)
    checklist = readiness.evaluate(facts(
        deployment=deployment("staging", replicas={"min": 1, "max": 1}, escalation=None), model=limited))
    assert item(checklist, "infrastructure.replicas").status == "pass"
    assert item(checklist, "compliance.escalation").status == "pass"
    assert "max equals" in item(checklist, "infrastructure.autoscaling").detail or \
        "fixed at 1" in item(checklist, "infrastructure.autoscaling").detail


def test_gpu_with_a_node_selector_is_isolated() -> None:
    placed = deployment(resources={"cpu": "2", "memory": "4Gi", "gpu": 1},
                        nodeSelector={"nvidia.com/gpu.present": "true"})
    assert item(readiness.evaluate(facts(deployment=placed)), "infrastructure.gpu_isolation").status == "pass"


@pytest.mark.parametrize(("changes", "field", "kind"), [
    ({"monitoring": {"retrain": {"webhook": "https://hooks.example.com/r?token=s3cr3t"}}},
     "spec.monitoring.retrain.webhook", "a credential parameter"),
    ({"nodeSelector": {"pool": "AKIAIOSFODNN7EXAMPLE"}}, "spec.nodeSelector.pool", "an AWS access key id"),
    ({"tolerations": [{"key": "dedicated", "value": "tl_abcdefghijklmnopqrstuv"}]},
     "spec.tolerations[0].value", "a Threadline API token"),
])
def test_secrets_in_the_spec_are_named_by_field_never_echoed(changes: dict[str, Any], field: str,
                                                               kind: str) -> None:
    found = item(readiness.evaluate(facts(deployment=deployment(**changes))), "security.secrets")
    assert found.status == "fail"
    assert f"{field} looks like it holds {kind}" in found.detail
    for secret in ("s3cr3t", "AKIAIOSFODNN7EXAMPLE", "tl_abcdefghijklmnopqrstuv"):
        assert secret not in found.detail


def test_attestation_message_is_canonical_and_signable() -> None:
    key = ("fraud-scorer", "production")
    message = readiness.attestation_message(key, "infrastructure.network_policy", "dana", NOW, "ok ✓")
    assert message == readiness.attestation_message(key, "infrastructure.network_policy", "dana", NOW, "ok ✓")
    data = json.loads(message)
    assert list(data) == sorted(data)
    assert (data["deployment"], data["environment"], data["comment"]) == ("fraud-scorer", "production", "ok ✓")
    assert message != readiness.attestation_message(("fraud-scorer", "staging"), "infrastructure.network_policy",
                                                    "dana", NOW, "ok ✓")
    private = ed25519.Ed25519PrivateKey.generate()
    private.public_key().verify(private.sign(message), message)  # raises if the bytes were not stable
    with pytest.raises(errors.InvalidInput, match="timezone"):
        readiness.attestation_message(key, "infrastructure.network_policy", "dana", NOW.replace(tzinfo=None), "")


HOSTILE = "<script>alert(1)</script> | x\ny"


def test_renderers_escape_attestation_text_and_show_every_item() -> None:
    checklist = readiness.evaluate(facts(autoscaled=0), [attest("infrastructure.network_policy", HOSTILE)])
    page = report_render.readiness_html(checklist)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "NOT READY" in page and "ATTESTED" in page and "FAIL" in page
    assert "NEEDS ATTESTATION" in report_render.readiness_html(readiness.evaluate(facts()))
    text = report_render.readiness_markdown(checklist)
    assert "<script>" not in text and "Ready: **NO**" in text
    for i in checklist.items:
        assert f"<code>{i.id}</code>" in page and f"(`{i.id}`)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Item")]
    assert len(rows) == len(checklist.items)
    assert all(row.replace("\\|", "").count("|") == 4 for row in rows)


def test_json_form_round_trips_through_orjson() -> None:
    checklist = readiness.evaluate(facts(), ALL_ATTESTED)
    data = report_render.readiness_json(checklist)
    assert orjson.loads(orjson.dumps(data)) == data
    assert data["ready"] is True and data["deployment"] == {"name": "fraud-scorer", "environment": "production"}
    attested = [i for i in data["items"] if i["status"] == "attested"]
    assert len(attested) == 1 and attested[0]["attestation"]["actor"] == "dana"
