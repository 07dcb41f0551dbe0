"""Dashboard pages: the model list, and one model with its versions, lineage, card and governance.

An approver decides pending approval requests from the model page. The decision goes through
the same Governance use case as ``POST /api/v1/models/{name}/versions/{version}/approvals``,
with the TOTP code from the form in place of the ``X-Threadline-OTP`` header: the code is
checked first, and only then does the actor count as MFA-verified.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from threadline import ports
from threadline.bootstrap import Services
from threadline.dashboard import lineage_graph, web
from threadline.domain import errors, models
from threadline.domain.access import Permission
from threadline.governance import cards, gates, policy

router = APIRouter(include_in_schema=False)

MODELS_PER_PAGE = 50
NEWEST_VERSIONS = 20  # listed and drawn; deployed, pending and asked-for versions are added to them


@dataclass(frozen=True)
class ModelRow:
    model: models.Model
    latest: models.ModelVersion | None
    aliases: dict[str, int]


@dataclass(frozen=True)
class Pending:
    """An open approval round for one version in one environment: what an approver acts on."""

    version: int
    environment: str
    request: models.Approval
    approvers: tuple[str, ...]


@dataclass(frozen=True)
class GovernanceView:
    """The focused version under the policy in force: gates per environment and approvals."""

    policy_version: int
    reports: tuple[gates.Report, ...]
    uncovered: tuple[str, ...]  # environments in use where the policy has no rules for this tier
    history: tuple[models.Approval, ...]
    pending: tuple[Pending, ...]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/models")
def model_list(request: Request, viewer: web.SignedIn, q: str | None = Query(None, max_length=200),
               after: str | None = Query(None, max_length=63)) -> Response:
    viewer.actor.require(Permission.READ)
    services = _services(request)
    page = services.registry.list_models(query=q or None, limit=MODELS_PER_PAGE, cursor=after)
    with services.store.reading() as tx:
        rows = [ModelRow(model, _latest(tx, model.name), tx.aliases(model.name)) for model in page.items]
    next_url = ("/models?" + urlencode({"q": q or "", "after": page.next_cursor})) if page.next_cursor else None
    return web.render(request, "models.html", viewer=viewer, rows=rows, q=q or "", next_url=next_url)


@router.get("/models/{name}")
def model_page(request: Request, viewer: web.SignedIn, name: str, version: int | None = Query(None, ge=1)) -> Response:
    """``version`` focuses the details, card, gates and decisions on one version (the latest by default)."""
    viewer.actor.require(Permission.READ)
    services = _services(request)
    model = services.registry.get_model(name)
    with services.store.reading() as tx:
        aliases = tx.aliases(model.name)
        held = lineage_graph.placements(tx.deployments(), model.name, aliases)
        approvals = tx.approvals(model.name)
        pending = _pending(tx, model, approvals, services.governance.policy(tx).parsed)
        latest = tx.latest_version(model.name)
        focus = version or latest
        versions = _versions(tx, model.name, latest, {p.version for p in held} | {p.version for p in pending} | {focus})
    if focus is None:
        return web.render(request, "model.html", viewer=viewer, model=model, versions=[], aliases=aliases,
                          focused=None)
    focused = next(v for v in versions if v.version == focus)
    _, card, revision = services.governance.card(model.name, focus)
    governance = _governance(services, model, focused, approvals, pending, {p.environment for p in held})
    may_decide = viewer.can(Permission.DECIDE_APPROVAL)
    return web.render(
        request, "model.html", viewer=viewer, model=model, versions=versions, aliases=aliases, focused=focused,
        registrants={v.version: v.created_by for v in versions},
        by_alias=_aliases_by_version(aliases), graph=lineage_graph.layout(versions, held, focus), held=held,
        card=card.model_dump(mode="json"), card_revision=revision, card_sections=cards.SECTIONS,
        card_missing=set(cards.missing_fields(card, cards.FIELD_PATHS)), governance=governance,
        may_decide=may_decide, enrolled=may_decide and services.mfa.enrolled(viewer.principal.user))


@router.post("/models/{name}/versions/{version}/approvals")
def decide(request: Request, viewer: web.SignedIn, form: web.CheckedForm, name: str, version: int) -> Response:
    """Approve or reject a pending request; a TOTP code in the form makes the decision MFA-verified."""
    viewer.actor.require(Permission.DECIDE_APPROVAL)
    environment = web.text_field(form, "environment", limit=63) or ""
    decision = web.text_field(form, "decision", limit=16)
    comment = web.text_field(form, "comment", required=False) or ""
    code = web.text_field(form, "otp", required=False, limit=16)
    services = _services(request)
    actions = {"approve": services.governance.approve, "reject": services.governance.reject}
    if decision not in actions:
        raise errors.InvalidInput("must be approve or reject", field="decision")
    actor = viewer.actor
    if code is not None:
        services.mfa.verify(viewer.principal.user, code)
        actor = viewer.principal.actor(mfa_verified=True)
    actions[decision](actor, name, version, environment, comment)
    return RedirectResponse(f"/models/{name}?version={version}#approvals", status_code=303)


def _latest(tx: ports.ReadTransaction, name: str) -> models.ModelVersion | None:
    number = tx.latest_version(name)
    return None if number is None else tx.get_version(name, number)


def _versions(tx: ports.ReadTransaction, name: str, latest: int | None, wanted: set[int | None]
              ) -> list[models.ModelVersion]:
    """The newest versions and every ``wanted`` one, newest first (a missing one is a 404)."""
    # Versions are numbered 1, 2, ... without gaps, so the newest N start after latest - N.
    newest = [] if latest is None else tx.list_versions(name, limit=NEWEST_VERSIONS,
                                                         after=max(0, latest - NEWEST_VERSIONS))
    listed = {v.version for v in newest}
    extra = [tx.get_version(name, number) for number in sorted(n for n in wanted if n is not None and n not in listed)]
    return sorted([*newest, *extra], key=lambda v: v.version, reverse=True)


def _aliases_by_version(aliases: dict[str, int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for alias, number in sorted(aliases.items()):
        found[number].append(alias)
    return found


def _governance(services: Services, model: models.Model, focused: models.ModelVersion,
                approvals: Sequence[models.Approval], pending: Sequence[Pending], deployed: set[str]) -> GovernanceView:
    """Gates of the focused version in every environment the policy names or that is in use."""
    in_force = services.governance.policy()
    named, wildcard = _policy_environments(in_force.parsed, model.risk_tier)
    used = deployed | {a.environment for a in approvals}
    environments = sorted(named | (used if wildcard else set()))
    return GovernanceView(
        policy_version=in_force.version,
        reports=tuple(services.governance.check(model.name, focused.version, env) for env in environments),
        uncovered=tuple(sorted(used - set(environments))),
        history=tuple(a for a in approvals if a.version == focused.version),
        pending=tuple(pending))


def _policy_environments(parsed: policy.GovernancePolicy, tier: models.RiskTier) -> tuple[set[str], bool]:
    """The environments the policy names for ``tier``, and whether ``*`` covers all others.

    The unacceptable tier has no rules and is refused everywhere, so every environment applies.
    """
    if tier is models.RiskTier.UNACCEPTABLE:
        return {env for rules in parsed.tiers.values() for env in rules if env != policy.WILDCARD}, True
    rules = parsed.tiers[tier.value]
    return {env for env in rules if env != policy.WILDCARD}, policy.WILDCARD in rules


def _pending(tx: ports.ReadTransaction, model: models.Model, approvals: Sequence[models.Approval],
             rules: policy.GovernancePolicy) -> list[Pending]:
    """Rounds still waiting for approvers, newest version first, from the immutable decision
    records: requested, not rejected, and short of the approvers the policy asks for."""
    by_version: dict[int, list[models.Approval]] = defaultdict(list)
    for record in approvals:
        by_version[record.version].append(record)
    found = []
    for number, records in sorted(by_version.items(), reverse=True):
        for environment in sorted({r.environment for r in records}):
            state = gates.approval_state(records, environment)
            needed = rules.gates(model.risk_tier, environment)
            if state.requested and (needed is None or gates.approvals_gate(
                    tx.get_version(model.name, number), state, needed).outcome is not gates.Outcome.PASS):
                request = [r for r in records if r.environment == environment
                           and r.decision is models.Decision.REQUEST][-1]
                found.append(Pending(number, environment, request, state.approvers))
    return found

