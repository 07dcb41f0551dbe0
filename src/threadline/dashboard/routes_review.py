"""The review queue: escalated predictions, the bundle viewer, claim and resolve.

A reviewer judges a case from its bundle, so the viewer lays the whole context out: the
request, why it was escalated, the decision chain step by step, where the model came from, and
whether the signature still holds. Listing and viewing go through the review service, which
audits both; claiming and resolving are forms whose rules (one reviewer at a time, a label for
an override, only admins take over) the service enforces, whatever the page showed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from threadline.bootstrap import Services
from threadline.bundles import document
from threadline.dashboard import bundle_view, web
from threadline.domain import errors, models
from threadline.domain.access import Permission
from threadline.monitoring.feedback import task_of
from threadline.review.service import STATUSES

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100
ALL = "all"


@dataclass(frozen=True)
class QueueRow:
    task: models.ReviewTask
    bundle: models.BundleRecord


@dataclass(frozen=True)
class SignatureCheck:
    valid: bool
    message: str


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _bundle_url(bundle_id: str) -> str:
    return "/review/" + quote(bundle_id, safe="")


@router.get("/review")
def queue_page(request: Request, viewer: web.SignedIn, status: str = Query("open", max_length=16),
               queue: str | None = Query(None, max_length=63)) -> Response:
    """Oldest first, like the API, so a queue is worked in order; open cases unless asked otherwise."""
    services = _services(request)
    queue = queue or None
    tasks, total = services.reviews.tasks(viewer.actor, queue=queue, status=None if status == ALL else status,
                                          limit=PAGE_SIZE)
    with services.store.reading() as tx:
        rows = [QueueRow(task, tx.get_bundle(task.bundle_id)) for task in tasks]
        counts = {name: tx.count_review_tasks(queue=queue, status=name) for name in STATUSES}
    return web.render(request, "review.html", viewer=viewer, rows=rows, total=total, chosen=status, queue=queue,
                      counts=counts, statuses=STATUSES, all_statuses=ALL)


@router.get("/review/{bundle_id}")
def bundle_page(request: Request, viewer: web.SignedIn, bundle_id: str) -> Response:
    """One case (an audited read) and, for reviewers, the forms that take and close it."""
    services = _services(request)
    view = services.reviews.show(viewer.actor, bundle_id)
    bundle = view.bundle
    signature = models.signature_from_json(bundle["signature"])
    classes = list(signature.classes) if signature.classes is not None else None
    kind = task_of(signature)
    task = view.task
    open_case = viewer.can(Permission.REVIEW) and task is not None and task.status != "resolved"
    held_by_other = task is not None and task.status == "claimed" and task.assignee != viewer.actor.name
    return web.render(
        request, "bundle.html", viewer=viewer, record=view.record, bundle=bundle, task=task, kind=kind,
        classes=classes, blocks=bundle_view.chain_blocks(bundle["steps"], classes),
        inputs=bundle_view.facts(bundle["inputs"], None), outputs=bundle_view.facts(bundle["outputs"], classes),
        lineage=bundle_view.facts(bundle["lineage"], None),
        answer=bundle_view.answer(bundle["outputs"], kind), check=_check_signature(services, view.record),
        received=bundle_view.facts(bundle["request"], None),
        body=orjson.dumps(bundle, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode(),
        held_by_other=held_by_other, action=_bundle_url(bundle_id),
        may_claim=open_case and task is not None and task.status == "open",
        may_take_over=open_case and held_by_other and viewer.actor.is_admin,
        may_resolve=open_case and not held_by_other)


@router.post("/review/{bundle_id}/claim")
def claim(request: Request, viewer: web.SignedIn, form: web.CheckedForm, bundle_id: str) -> Response:
    """Take the case; ``take_over`` (admins) takes it from the reviewer who holds it."""
    _services(request).reviews.claim(viewer.actor, bundle_id, take_over=form.get("take_over") == "yes")
    return RedirectResponse(_bundle_url(bundle_id), status_code=303)


@router.post("/review/{bundle_id}/resolve")
def resolve(request: Request, viewer: web.SignedIn, form: web.CheckedForm, bundle_id: str) -> Response:
    services = _services(request)
    decision = web.text_field(form, "decision", limit=16)
    label = web.text_field(form, "label", required=False, limit=1000)
    comment = web.text_field(form, "comment", required=False, limit=4000) or ""
    services.reviews.resolve(viewer.actor, bundle_id, decision=str(decision),
                             label=_typed_label(services, bundle_id, label), comment=comment)
    return RedirectResponse(_bundle_url(bundle_id), status_code=303)


def _typed_label(services: Services, bundle_id: str, text: str | None) -> Any:
    """Form fields are text, but a regressor's label must reach the service as a number."""
    if text is None:
        return None
    with services.store.reading() as tx:
        record = tx.get_bundle(bundle_id)
    if task_of(models.signature_from_json(orjson.loads(record.body)["signature"])) != "regression":
        return text
    try:
        return float(text)
    except ValueError:
        raise errors.InvalidInput(f"this model predicts numbers: {text!r} is not one", field="label") from None


def _check_signature(services: Services, record: models.BundleRecord) -> SignatureCheck:
    """Whether a key this installation trusts signed exactly the stored content (and which key)."""
    try:
        bundle = document.parse(record.body.encode())
        document.verify(document.SignedBundle(bundle, record.signature, record.key_id),
                        services.reviews.trusted_keys())
    except (errors.PolicyViolation, errors.InvalidInput) as exc:
        return SignatureCheck(False, str(exc))
    if document.digest(bundle) != record.digest:
        return SignatureCheck(False, f"the content's digest is not the recorded {record.digest}")
    return SignatureCheck(True, f"verified with key {record.key_id}")
