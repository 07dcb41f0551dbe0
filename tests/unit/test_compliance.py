"""The compliance report: evidence in, controls out, and every form of it safe to show."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from threadline.domain import models
from threadline.gitops import spec
from threadline.governance import compliance, report_render

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def model(tier: models.RiskTier = models.RiskTier.HIGH, description: str = "Scores card payments") -> models.Model:
    return models.Model(name="fraud-model", owner="risk-team", risk_tier=tier, description=description,
                        created_by="alice", created_at=NOW)


def version(**changes: Any) -> models.ModelVersion:
    full = models.ModelVersion(
        model="fraud-model", version=7, artifact_digest="ab" * 32, artifact_size=1024,
        flavor=models.Flavor.SKLEARN, artifact_format=models.ArtifactFormat.SKOPS, trusted=False,
        signature=models.Signature(inputs=(models.TensorSpec("x", "FP64", (-1, 3)),)),
        has_profile=True, metrics={"f1": 0.91, "roc_auc": 0.95}, card={},
        lineage=models.Lineage(training_data=(models.DataRef("s3://data/train.parquet", "cd" * 32),),
                               code_repo="https://git.example.com/fraud", code_commit="abc123"),
        status="approved:production", description="Retrained on Q4 data", created_by="alice",
        created_at=NOW)
    return dataclasses.replace(full, **changes)


def deployment(**spec_changes: Any) -> spec.ModelDeployment:
    body: dict[str, Any] = {
        "model": "fraud-model", "version": 7, "replicas": {"min": 2, "max": 4},
        "monitoring": {"drift": {"method": "psi", "threshold": 0.2},
                       "accuracy": {"metric": "f1", "minimum": 0.85}},
        "escalation": {"confidenceBelow": 0.6, "queue": "fraud-review"},
    }
    body.update(spec_changes)
    return spec.ModelDeployment.model_validate({
        "apiVersion": "threadline/v1", "kind": "ModelDeployment",
        "metadata": {"name": "fraud-scorer", "environment": "production", "owner": "risk-team"},
        "spec": {key: value for key, value in body.items() if value is not None}})


def full_evidence(**changes: Any) -> compliance.Evidence:
    evidence = compliance.Evidence(
        model=model(), version=version(),
        card_sections={name: True for name in compliance.CARD_SECTIONS}, fairness=True,
        approvals=(compliance.ApprovalEvidence("production", "bob", NOW, True),
                   compliance.ApprovalEvidence("production", "carol", NOW, True)),
        gates=(compliance.GateEvidence("approvers", "production", True, "2 of 2"),
               compliance.GateEvidence("card", "production", True, "complete")),
        audit_entries=12, audit_verified=True, deployment=deployment(), audit_retention_days=3650,
        prediction_log_retention_days=365, policy_version=3, base_url="/api/v1")
    return dataclasses.replace(evidence, **changes)


def bare_evidence() -> compliance.Evidence:
    return compliance.Evidence(
        model=model(description=""),
        version=version(has_profile=False, metrics={}, lineage=models.Lineage(), description=""),
        audit_retention_days=2555)


def by_id(report: compliance.ComplianceReport) -> dict[str, compliance.Control]:
    return {c.control_id: c for c in report.controls}


def test_a_fully_evidenced_high_risk_version_satisfies_all_but_attestations() -> None:
    report = compliance.evaluate(full_evidence())
    assert {c.framework for c in report.controls} == set(compliance.FRAMEWORKS)
    unsatisfied = {c.control_id: c.status for c in report.controls if c.status != compliance.SATISFIED}
    assert unsatisfied == {"Art. 9(2)": "needs attestation", "Art. 15(5)": "needs attestation",
                           "MEASURE 2.7": "needs attestation"}
    assert report.counts == {"satisfied": len(report.controls) - 3, "missing": 0, "needs attestation": 3}
    assert (report.model, report.version, report.risk_tier) == ("fraud-model", 7, "high")
    controls = by_id(report)
    assert "/api/v1/models/fraud-model/versions/7/card" in controls["Art. 11"].evidence
    assert "/api/v1/models/fraud-model/versions/7/profile" in controls["Art. 10"].evidence
    assert "/api/v1/models/fraud-model/versions/7/approvals" in controls["Art. 9"].evidence
    assert controls["Art. 12"].evidence == ("/api/v1/audit/entries?object=model/fraud-model/version/7",)
    assert "review queue fraud-review" in controls["Art. 14"].detail
    assert "bob (production, MFA" in controls["Art. 9"].detail


def test_a_bare_version_is_missing_evidence_with_a_way_to_supply_it() -> None:
    controls = by_id(compliance.evaluate(bare_evidence()))
    art10 = controls["Art. 10"]
    assert art10.status == "missing" and art10.evidence == ()
    assert "--training-data FILE" in art10.detail
    assert "no fairness evaluation: register the version with per-group metrics in the card's " \
           "quantitative_analysis.fairness" in art10.detail
    assert "model card lacks model_details, intended_use" in controls["Art. 11"].detail
    assert "threadline audit verify" not in controls["Art. 12"].detail  # nothing to verify yet
    assert "holds no entry" in controls["Art. 12"].detail
    assert "no approvals" in controls["Art. 9"].detail and "no policy gates" in controls["Art. 9"].detail
    assert "--metric NAME=VALUE" in controls["Art. 15"].detail
    assert "no governance policy" in controls["A.2.2"].detail
    assert "code_repo, code_commit" in controls["A.6.2"].detail
    # An impact assessment can be attested instead of documented in the card.
    assert controls["A.5.2"].status == "needs attestation"
    assert "ethical_considerations" in controls["A.5.2"].detail
    report = compliance.evaluate(bare_evidence())
    assert report.counts["satisfied"] < report.counts["missing"]
    assert all(c.detail for c in report.controls)


def test_without_a_deployment_deployment_controls_say_how_to_name_one() -> None:
    controls = by_id(compliance.evaluate(full_evidence(deployment=None)))
    for control_id in ("Art. 14", "Art. 15", "MEASURE 2.4", "MANAGE 2.4", "MANAGE 4.1", "A.9.4"):
        assert controls[control_id].status == "missing", control_id
        assert compliance.NO_DEPLOYMENT in controls[control_id].detail
    assert controls["Art. 14"].detail == compliance.NO_DEPLOYMENT  # said once, not per check
    assert controls["Art. 10"].status == "satisfied"


def test_high_risk_needs_escalation_lower_tiers_do_not() -> None:
    plain = deployment(escalation=None)
    high = by_id(compliance.evaluate(full_evidence(deployment=plain)))["Art. 14"]
    assert high.status == "missing" and "spec.escalation" in high.detail
    limited = full_evidence(deployment=plain, model=model(models.RiskTier.LIMITED))
    assert by_id(compliance.evaluate(limited))["Art. 14"].status == "satisfied"


def test_log_retention_below_six_months_is_missing() -> None:
    controls = by_id(compliance.evaluate(full_evidence(prediction_log_retention_days=90)))
    retention = controls["Art. 19, 26(6)"]
    assert retention.status == "missing" and "kept 90 days, fewer than 183" in retention.detail
    off = by_id(compliance.evaluate(full_evidence(prediction_log_retention_days=None)))["Art. 19, 26(6)"]
    assert off.status == "missing" and "not logged" in off.detail
    short_audit = by_id(compliance.evaluate(full_evidence(audit_retention_days=100)))
    assert short_audit["Art. 19, 26(6)"].status == "missing"
    assert short_audit["Art. 18"].status == "missing" and "fewer than 3650" in short_audit["Art. 18"].detail
    seven_years = by_id(compliance.evaluate(full_evidence(audit_retention_days=2555)))
    assert seven_years["Art. 19, 26(6)"].status == "satisfied" and seven_years["Art. 18"].status == "missing"


def test_failed_gates_self_approval_and_a_broken_chain_are_named() -> None:
    evidence = full_evidence(
        gates=(compliance.GateEvidence("fairness", "production", False, "no fairness evaluation"),),
        approvals=(compliance.ApprovalEvidence("production", "alice", NOW, False),),
        audit_verified=False)
    controls = by_id(compliance.evaluate(evidence))
    assert "gate fairness (production) failed: no fairness evaluation" in controls["Art. 9"].detail
    assert controls["A.3.2"].status == "missing" and "alice approved a version they registered" in \
        controls["A.3.2"].detail
    assert controls["Art. 12"].status == "missing" and "FAILED" in controls["Art. 12"].detail
    unverified = by_id(compliance.evaluate(full_evidence(audit_verified=None)))["Art. 12"]
    assert "threadline audit verify" in unverified.detail


def test_training_data_without_digest_is_not_provenance() -> None:
    lineage = models.Lineage(training_data=(models.DataRef("s3://data/train.parquet"),),
                             code_repo="r", code_commit="c")
    control = by_id(compliance.evaluate(full_evidence(version=version(lineage=lineage))))["A.7.5"]
    assert control.status == "missing" and "s3://data/train.parquet" in control.detail


HOSTILE = "<script>alert(1)</script> | a\nb"


def hostile_report() -> compliance.ComplianceReport:
    evidence = full_evidence(
        gates=(compliance.GateEvidence("g", "production", False, HOSTILE),),
        approvals=(compliance.ApprovalEvidence("production", HOSTILE, NOW, True),),
        base_url="javascript:alert(1)//")
    return compliance.evaluate(evidence)


def test_renderers_escape_user_text_and_show_every_control() -> None:
    report = hostile_report()
    page = report_render.compliance_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript' not in page  # a configured base URL never becomes a live link
    for control in report.controls:
        assert f"<td>{control.control_id}</td>" in page
    assert "MISSING" in page and "SATISFIED" in page and "NEEDS ATTESTATION" in page

    text = report_render.compliance_markdown(report)
    assert "<script>" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Control")]
    assert len(rows) == len(report.controls)
    for row in rows:  # the hostile "|" and newline stay inside their cell
        assert row.replace("\\|", "").count("|") == 6
    assert "\\| a<br>b" in text


def test_json_form_round_trips_through_orjson() -> None:
    report = compliance.evaluate(full_evidence())
    data = report_render.compliance_json(report)
    assert orjson.loads(orjson.dumps(data)) == data
    assert len(data["controls"]) == len(report.controls)
    assert data["generated_from"]["deployment"] == {"name": "fraud-scorer", "environment": "production"}
    assert data["counts"] == dict(report.counts)


@pytest.mark.parametrize("tier", list(models.RiskTier))
def test_every_tier_gives_a_complete_report(tier: models.RiskTier) -> None:
    report = compliance.evaluate(full_evidence(model=model(tier)))
    assert sum(report.counts.values()) == len(report.controls)
    assert len({(c.framework, c.control_id) for c in report.controls}) == len(report.controls)
    art9 = by_id(report)["Art. 9"]
    assert (art9.status == "missing") == (tier is models.RiskTier.UNACCEPTABLE)
