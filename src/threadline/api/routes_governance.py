"""Governance routes: the policy, model cards, gate checks, approvals, compliance and readiness."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from threadline.api.auth import needs
from threadline.api.dto import Strict
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import errors, models
from threadline.domain.access import Permission
from threadline.gitops import documents, spec
from threadline.governance import cards, gates, report_render

router = APIRouter(prefix="/api/v1", tags=["governance"])

Format = Literal["json", "markdown", "html"]
_VERSION = "/models/{name}/versions/{ref}"


class PolicyIn(Strict):
    document: str = Field(max_length=1 << 20, description="The policy YAML.")
    source: str = Field("policy.yaml", max_length=255, description="File name shown in errors.")


class DecisionIn(Strict):
    environment: str
    comment: str = Field("", max_length=10_000)


class ApprovalIn(DecisionIn):
    decision: Literal["approve", "reject", "withdraw"]


class DeploymentIn(Strict):
    deployment: str | None = Field(None, max_length=1 << 20, description="A ModelDeployment YAML document.")
    format: Format = "json"


class AttestationIn(Strict):
    deployment: str = Field(max_length=1 << 20, description="The ModelDeployment YAML document.")
    item: str = Field(max_length=63)
    comment: str = Field(max_length=10_000)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _deployment(text: str) -> spec.ModelDeployment:
    found = documents.load_text(text, "deployment")
    if len(found) != 1:
        raise errors.InvalidInput(f"expected one ModelDeployment document, got {len(found)}", field="deployment")
    return found[0]


def _rendered(data: dict[str, Any], markdown: str | None, html: str | None, format: Format) -> Response:
    if format == "markdown" and markdown is not None:
        return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")
    if format == "html" and html is not None:
        return HTMLResponse(html, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
    return JSON(data)


def report_json(report: gates.Report) -> dict[str, Any]:
    return {"model": report.model, "version": report.version, "environment": report.environment,
            "risk_tier": report.risk_tier, "policy_version": report.policy_version, "passed": report.passed,
            "gates": [{"name": g.name, "outcome": g.outcome.value, "reason": g.reason} for g in report.gates]}


def approval_json(approval: models.Approval) -> dict[str, Any]:
    return {"id": approval.id, "environment": approval.environment, "decision": approval.decision.value,
            "actor": approval.actor, "comment": approval.comment, "mfa": approval.mfa, "time": approval.time}


# -- policy --------------------------------------------------------------------------------

@router.get("/policy")
def get_policy(request: Request, actor: needs(Permission.READ)) -> JSON:
    """The policy in force (version 0 is the built-in pack) and its YAML."""
    in_force = _services(request).governance.policy()
    return JSON({"version": in_force.version, "document": in_force.document,
                 "parsed": in_force.parsed.model_dump(mode="json", by_alias=True)})


@router.get("/policy/history")
def policy_history(request: Request, actor: needs(Permission.READ)) -> JSON:
    return JSON({"items": [{"version": r.version, "digest": r.digest, "created_by": r.created_by,
                            "created_at": r.created_at} for r in _services(request).governance.policies()]})


@router.put("/policy")
def set_policy(request: Request, actor: needs(Permission.MANAGE_POLICY), body: PolicyIn) -> JSON:
    """Put a new policy in force (admins, with a fresh TOTP code); a bad one changes nothing."""
    version = _services(request).governance.set_policy(actor, body.document, body.source)
    return JSON({"version": version})


# -- cards ---------------------------------------------------------------------------------

@router.get(_VERSION + "/card")
def get_card(request: Request, actor: needs(Permission.READ), name: str, ref: str,
             format: Format = Query("json")) -> Response:
    services = _services(request)
    version, card, revision = services.governance.card(name, ref)
    model = services.registry.get_model(version.model)
    data = {"model": version.model, "version": version.version, "revision": revision,
            "card": card.model_dump(mode="json")}
    return _rendered(data, cards.render_markdown(card, model, version) if format == "markdown" else None,
                     cards.render_html(card, model, version) if format == "html" else None, format)


@router.put("/models/{name}/versions/{version}/card")
def edit_card(request: Request, actor: needs(Permission.WRITE_MODELS), name: str, version: int,
              body: dict[str, Any]) -> JSON:
    """Replace the card with a new revision (owners of the model only); revisions are kept."""
    revision = _services(request).governance.edit_card(actor, name, version, cards.parse_card(body))
    return JSON({"model": name, "version": version, "revision": revision})


# -- gates and approvals -------------------------------------------------------------------

@router.get(_VERSION + "/check")
def check(request: Request, actor: needs(Permission.READ), name: str, ref: str,
          environment: str = Query(max_length=63)) -> JSON:
    """Every gate of the policy for this version in ``environment``, with pass/fail and why."""
    return JSON(report_json(_services(request).governance.check(name, ref, environment)))


@router.get(_VERSION + "/approvals")
def list_approvals(request: Request, actor: needs(Permission.READ), name: str, ref: str) -> JSON:
    return JSON({"items": [approval_json(a) for a in _services(request).governance.approvals(name, ref)]})


@router.post("/models/{name}/versions/{version}/approval-requests", status_code=201)
def request_approval(request: Request, actor: needs(Permission.REQUEST_APPROVAL), name: str, version: int,
                     body: DecisionIn) -> JSON:
    report = _services(request).governance.request(actor, name, version, body.environment, body.comment)
    return JSON(report_json(report), status_code=201)


@router.post("/models/{name}/versions/{version}/approvals", status_code=201)
def decide(request: Request, actor: needs(Permission.DECIDE_APPROVAL), name: str, version: int,
           body: ApprovalIn) -> JSON:
    """Approve, reject or withdraw your approval; the response shows the gates after it."""
    governance = _services(request).governance
    act = {"approve": governance.approve, "reject": governance.reject, "withdraw": governance.withdraw}[body.decision]
    return JSON(report_json(act(actor, name, version, body.environment, body.comment)), status_code=201)


# -- reports -------------------------------------------------------------------------------

@router.post(_VERSION + "/compliance")
def compliance_report(request: Request, actor: needs(Permission.READ), name: str, ref: str,
                      body: DeploymentIn) -> Response:
    """Evidence mapped to EU AI Act, NIST AI RMF and ISO/IEC 42001 controls."""
    deployment = _deployment(body.deployment) if body.deployment else None
    report = _services(request).reports.compliance(name, ref, deployment)
    return _rendered(report_render.compliance_json(report),
                     report_render.compliance_markdown(report) if body.format == "markdown" else None,
                     report_render.compliance_html(report) if body.format == "html" else None, body.format)


@router.post("/readiness")
def readiness_report(request: Request, actor: needs(Permission.READ), body: DeploymentIn) -> Response:
    """The production readiness checklist of a deployment spec, with recorded attestations."""
    if not body.deployment:
        raise errors.InvalidInput("give the ModelDeployment YAML", field="deployment")
    checklist = _services(request).reports.readiness(_deployment(body.deployment))
    return _rendered(report_render.readiness_json(checklist),
                     report_render.readiness_markdown(checklist) if body.format == "markdown" else None,
                     report_render.readiness_html(checklist) if body.format == "html" else None, body.format)


@router.post("/readiness/attestations", status_code=201)
def attest(request: Request, actor: needs(Permission.ATTEST), body: AttestationIn) -> JSON:
    """Sign that a readiness item no check can see holds (e.g. a network policy is in place)."""
    record = _services(request).reports.attest(actor, _deployment(body.deployment), body.item, body.comment)
    return JSON({"id": record.id, "deployment": record.deployment, "environment": record.environment,
                 "item": record.item, "actor": record.actor, "time": record.time, "key_id": record.key_id,
                 "signature": record.signature.hex()}, status_code=201)
