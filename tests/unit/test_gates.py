"""The policy and its gates, pure: default pack, parse errors, approval rounds, gate outcomes."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from threadline.domain import errors, models
from threadline.gitops import spec
from threadline.governance import cards, gates, policy

NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)
MODEL = models.Model("iris", "risk", models.RiskTier.HIGH, "", "dana", NOW)
VERSION = models.ModelVersion(
    model="iris", version=1, artifact_digest="0" * 64, artifact_size=1, flavor=models.Flavor.SKLEARN,
    artifact_format=models.ArtifactFormat.SKOPS, trusted=False,
    signature=models.Signature((models.TensorSpec("x", "FP64", (-1, 4)),)), has_profile=True,
    metrics={"accuracy": 0.95}, card={},
    lineage=models.Lineage(training_data=(models.DataRef("file:///t.parquet", "a" * 64),), code_commit="abc"),
    status="validated", description="", created_by="dana", created_at=NOW)
DEFAULT = policy.parse(policy.default_text(), "default-policy.yaml")


def approval(decision: str, actor: str, *, mfa: bool = True, environment: str = "production") -> models.Approval:
    return models.Approval("iris", 1, environment, models.Decision(decision), actor, "", mfa, NOW)


def test_the_default_pack_follows_the_design() -> None:
    assert DEFAULT.gates(models.RiskTier.MINIMAL, "staging") == policy.Gates()
    assert DEFAULT.gates(models.RiskTier.MINIMAL, "production").approvals == 1
    limited = DEFAULT.gates(models.RiskTier.LIMITED, "production")
    assert limited.card and limited.metrics
    high = DEFAULT.gates(models.RiskTier.HIGH, "production")
    assert (high.approvals, high.mfa, high.lineage, high.monitoring, high.escalation) == (2, True, True, True, True)
    assert high.fairness is not None and DEFAULT.gates(models.RiskTier.HIGH, "staging").approvals == 1
    assert DEFAULT.gates(models.RiskTier.HIGH, "eu-west") == high  # '*' covers unlisted environments
    assert DEFAULT.gates(models.RiskTier.UNACCEPTABLE, "staging") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("apiVersion: threadline/v1\nkind: GovernancePolicy\ntiers:\n  minimal: {}\n",
     "p.yaml:3: tiers: tiers limited, high have no rules"),
    ("apiVersion: threadline/v1\nkind: GovernancePolicy\ntiers:\n  minimal: {}\n  limited: {}\n  high:\n"
     "    prod:\n      card: [model_detail.overview]\n",
     "p.yaml:8: tiers.high.prod.card[0]: unknown model card field 'model_detail.overview'"),
    ("apiVersion: threadline/v1\nkind: GovernancePolicy\ntiers:\n  minimal: {}\n  limited: {}\n  high:\n"
     "    prod:\n      metrics: [{name: accuracy}]\n",
     "p.yaml:8: tiers.high.prod.metrics[0]: give min, max or both"),
    ("apiVersion: threadline/v1\nkind: GovernancePolicy\ntiers:\n  minimal: {}\n  limited: {}\n  high: {}\n"
     "  unacceptable: {}\n", "p.yaml:7: tiers.unacceptable"),
    ("kind: GovernancePolicy\n  bad indent: [\n", "p.yaml:2: invalid YAML"),
])
def test_a_bad_policy_is_refused_with_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        policy.parse(text, "p.yaml")
    assert expected in str(refused.value)


def test_an_environment_without_rules_is_a_policy_violation() -> None:
    text = ("apiVersion: threadline/v1\nkind: GovernancePolicy\ntiers:\n  minimal: {staging: {}}\n"
            "  limited: {}\n  high: {}\n")
    with pytest.raises(errors.PolicyViolation, match="no rules for tier minimal in environment 'production'"):
        policy.parse(text, "p.yaml").gates(models.RiskTier.MINIMAL, "production")


def test_approval_rounds_replay_the_records_in_order() -> None:
    records = [approval("request", "dana"), approval("approve", "ann"), approval("approve", "abe", mfa=False),
               approval("approve", "ann"), approval("approve", "amy", environment="staging")]
    state = gates.approval_state(records, "production")
    assert state.approvers == ("ann", "abe") and state.mfa_approvers == ("ann",)
    state = gates.approval_state([*records, approval("withdraw", "ann")], "production")
    assert state.approvers == ("abe",)
    rejected = gates.approval_state([*records, approval("reject", "amy")], "production")
    assert rejected.approvers == () and rejected.rejected_by == "amy" and not rejected.requested
    again = gates.approval_state([*records, approval("reject", "amy"), approval("request", "dana")], "production")
    assert again.requested and again.approvers == () and again.rejected_by is None
    assert gates.approval_state([approval("approve", "ann")], "production").approvers == ()  # no request yet


def _check(version: models.ModelVersion = VERSION, card: cards.ModelCard = cards.ModelCard(),
           approvals: tuple[models.Approval, ...] = (), deployment: spec.DeploymentSpec | None = None,
           model: models.Model = MODEL) -> dict[str, gates.Gate]:
    report = gates.check(model, version, card, approvals, DEFAULT.gates(model.risk_tier, "production"),
                         "production", 0, deployment)
    return {gate.name: gate for gate in report.gates}


def test_gates_say_what_fails_and_what_would_satisfy_it() -> None:
    found = _check()
    assert not found["card"].passed and "model_details.overview" in found["card"].reason
    assert "no fairness evaluation" in found["fairness"].reason
    assert found["metric:accuracy"].passed and found["lineage"].passed
    assert "request approval first" in found["approvals"].reason
    assert found["monitoring"].outcome is gates.Outcome.DEFERRED
    low = dataclasses.replace(VERSION, metrics={"accuracy": 0.85}, lineage=models.Lineage(), status="deprecated")
    found = _check(low)
    assert "accuracy is 0.85; the policy needs accuracy >= 0.9" in found["metric:accuracy"].reason
    assert "no training data reference; no code commit" in found["lineage"].reason
    assert not found["status"].passed


def test_only_distinct_mfa_approvers_other_than_the_registrant_count() -> None:
    records = (approval("request", "dana"), approval("approve", "ann"), approval("approve", "abe", mfa=False),
               approval("approve", "dana"))
    assert "1 of 2 distinct MFA-verified approvers" in _check(approvals=records)["approvals"].reason
    records += (approval("approve", "amy"),)
    assert _check(approvals=records)["approvals"].passed


def test_fairness_disparity_is_the_largest_gap_within_one_attribute_and_metric() -> None:
    results = (cards.FairnessResult(attribute="site", group="a", metric="recall", value=0.9),
               cards.FairnessResult(attribute="site", group="b", metric="recall", value=0.75),
               cards.FairnessResult(attribute="age", group="old", metric="recall", value=0.5),
               cards.FairnessResult(attribute="age", group="old", metric="precision", value=0.9))
    gap, where = gates.disparity(results)
    assert gap == pytest.approx(0.15) and where == "recall across site"
    card = cards.ModelCard(quantitative_analysis=cards.QuantitativeAnalysis(fairness=results))
    assert "disparity 0.15 in recall across site exceeds the policy's 0.1" in _check(card=card)["fairness"].reason


def test_spec_gates_are_checked_when_a_deployment_is_given() -> None:
    bare = spec.DeploymentSpec.model_validate({"model": "iris", "version": 1})
    found = _check(deployment=bare)
    assert "no drift or accuracy monitoring" in found["monitoring"].reason
    assert "no human oversight" in found["escalation"].reason
    full = spec.DeploymentSpec.model_validate({"model": "iris", "version": 1, "monitoring": {"drift": {}},
                                               "escalation": {"confidenceBelow": 0.6, "queue": "q"}})
    found = _check(deployment=full)
    assert found["monitoring"].passed and found["escalation"].passed


def test_unacceptable_never_passes() -> None:
    report = gates.check(dataclasses.replace(MODEL, risk_tier=models.RiskTier.UNACCEPTABLE), VERSION,
                         cards.ModelCard(), (), None, "staging", 0)
    assert not report.passed and "never deploys" in report.summary()
