"""The quickstart's steps, each one what a person on the team would do, through the API.

Every step "ensures": it looks at what is there first, so a run interrupted between (or
inside) any two steps completes on the next run. The developer registers, unless a version
with the same training data and code exists; approvers approve what they have not approved
yet; an unchanged spec makes no commit. Traffic is the exception: each run sends its own,
and reads drift and the review queue for exactly what it sent.

Waits poll with a deadline: the serving process writes its prediction log every quarter of
a second and ships context bundles in the background, so "done" is when the control plane
sees all of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pandas as pd

from threadline.client import Client
from threadline.domain import errors, lifecycle, models
from threadline.governance import gates
from threadline.quickstart import demo, repository
from threadline.quickstart.demo import MODEL
from threadline.quickstart.home import Home
from threadline.quickstart.progress import Step
from threadline.quickstart.repository import DEPLOYMENT, ENVIRONMENT, QUEUE
from threadline.quickstart.team import APPROVERS, DEVELOPER, Team

T = TypeVar("T")


def wait_until(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something other than None, and return that."""
    deadline = time.monotonic() + timeout
    while (found := condition()) is None:
        if time.monotonic() > deadline:
            raise errors.ThreadlineError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.25)
    return found


# -- registry and governance ---------------------------------------------------------------

def register(dev: Client, trained: demo.Demo, home: Home) -> tuple[int, bool]:
    """The version registered from this training data and code, registering it if need be;
    returns its number and whether this run registered it."""
    from threadline.registry import profiling

    data = home.training_data
    if not data.is_file():  # written once: the same file (and digest) on every run
        data.parent.mkdir(parents=True, exist_ok=True)
        staging = data.with_name(".train.parquet.inprogress")
        trained.train.to_parquet(staging, index=False)
        staging.replace(data)
    lineage = demo.lineage()
    digest = profiling.data_digest(data)
    for version in reversed(_versions(dev)):
        known = version["lineage"]
        digests = [ref["digest"] for ref in known["training_data"]]
        if known["code_commit"] == lineage["code_commit"] and digests == [digest]:
            return int(version["version"]), False
    registered = dev.register_model(
        trained.model, MODEL, training_data=data, target=demo.TARGET,
        card=demo.card(trained, data.as_uri()), risk="high", owner=demo.TEAM,
        metrics=trained.metrics, lineage=lineage,
        description="Breast cancer screening triage (Threadline quickstart)")
    return int(registered["version"]), True


def _versions(client: Client) -> list[dict[str, Any]]:
    try:
        return client.list_versions(MODEL)
    except errors.NotFound:
        return []


def approve(team: Team, version: int) -> list[str]:
    """Validate, request approval for production, and have each approver who has not yet
    approved do so with a fresh TOTP code; returns who approved in this run."""
    dev = team.client(DEVELOPER)
    status = dev.get_version(MODEL, version)["status"]
    if status == lifecycle.approved(ENVIRONMENT):
        return []
    if status == lifecycle.REGISTERED:
        dev.transition_version(MODEL, version, "validate")
    records = [_approval(record, version) for record in dev.approvals(MODEL, version)]
    state = gates.approval_state(records, ENVIRONMENT)
    if not state.requested:
        dev.request_approval(MODEL, version, ENVIRONMENT,
                             "Card, metrics, fairness and lineage attached.")
    approved = []
    for approver in APPROVERS:
        if approver.name not in state.approvers:
            team.client(approver).decide(MODEL, version, ENVIRONMENT, "approve",
                                         "Evidence reviewed.", otp=team.code(approver))
            approved.append(approver.name)
    report = dev.check(MODEL, version, ENVIRONMENT)
    if not report["passed"]:
        failing = "; ".join(f"{gate['name']}: {gate['reason']}" for gate in report["gates"]
                            if gate["outcome"] == "fail")
        raise errors.PolicyViolation(f"{MODEL}@{version} is not approved for {ENVIRONMENT}: "
                                     f"{failing}")
    return approved


def _approval(record: dict[str, Any], version: int) -> models.Approval:
    return models.Approval(MODEL, version, record["environment"],
                           models.Decision(record["decision"]), record["actor"], record["comment"],
                           record["mfa"], datetime.fromisoformat(str(record["time"])), record["id"])


# -- GitOps --------------------------------------------------------------------------------

def publish(home: Home, version: int) -> tuple[str, bool]:
    return repository.publish(home.repository, repository.spec(version),
                              f"Deploy {MODEL}@{version} to {ENVIRONMENT}")


def sync(admin: Client, version: int, step: Step) -> str:
    """Run a GitOps pass now and wait until the version serves; returns its endpoint."""
    result = admin.sync()
    if result["problems"]:
        raise errors.InvalidInput(f"the deployments repository has a problem: "
                                  f"{result['problems'][0]}")
    for action in result["actions"]:
        if action["deployment"] == DEPLOYMENT and action["status"] == "Blocked":
            found = "; ".join(action["evidence"].get("gates", [])) or action["reason"]
            raise errors.PolicyViolation(f"governance blocked {DEPLOYMENT}: {found}")
    step.update("waiting for the serving process")
    ref = f"{MODEL}@{version}"

    def serving() -> str | None:
        shown = _deployment(admin)
        if shown is None or not shown["running"] or shown["running"].split()[0] != ref:
            return None
        ready = [url for url in shown["endpoints"] if _ready(url)]
        return ready[0] if ready else None
    return wait_until(serving, 120, f"{ref} to serve")


def healthy(admin: Client) -> None:
    """Wait for the health checks after the apply to pass (the deployment becomes Synced)."""
    def synced() -> bool | None:
        shown = _deployment(admin)
        return True if shown is not None and shown["status"] == "Synced" else None
    wait_until(synced, 90, f"{DEPLOYMENT} to pass its health checks")


def _deployment(admin: Client) -> dict[str, Any] | None:
    try:
        shown = admin.deployment(DEPLOYMENT, ENVIRONMENT)
    except errors.NotFound:
        return None
    if shown["status"] in ("Blocked", "Degraded"):
        raise errors.RuntimeFailure(f"{DEPLOYMENT} is {shown['status']}: {shown['reason']} (see "
                                    f"`threadline deployments show {DEPLOYMENT}`, or start over "
                                    "with --fresh)")
    return shown


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/v2/health/ready", timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


# -- traffic, drift, review ----------------------------------------------------------------

@dataclass(frozen=True)
class Traffic:
    """What was sent, and when, so drift and the review queue are read for exactly that."""

    start: datetime
    shift: datetime   # between the normal and the drifted requests
    end: datetime
    normal: int
    drifted: int
    escalated: int


def send_traffic(endpoint: str, token: str, trained: demo.Demo, step: Step) -> Traffic:
    """One request per case, as clients call: the normal cases, then the drifted ones."""
    normal, drifted = demo.traffic(trained)
    with httpx.Client(base_url=endpoint, headers={"Authorization": f"Bearer {token}"},
                      timeout=30, trust_env=False) as http:
        start = _now()
        escalated = _send(http, normal, step, "normal")
        shift = _now()
        escalated += _send(http, drifted, step, "drifted")
        end = _now()
    return Traffic(start, shift, end, len(normal), len(drifted), escalated)


def _send(http: httpx.Client, rows: pd.DataFrame, step: Step, what: str) -> int:
    escalated = 0
    for number, row in enumerate(rows.to_dict("records"), start=1):
        try:
            response = http.post(f"/v2/models/{MODEL}/infer", json=demo.infer_body(row))
        except httpx.TransportError as exc:
            raise errors.RuntimeFailure(f"the serving process stopped answering: {exc}") from None
        if response.status_code != 200:
            raise errors.RuntimeFailure(f"the serving process answered {response.status_code}: "
                                        f"{response.text[:200]}")
        escalated += sum(response.json()["parameters"].get("escalated", []))
        if number % 20 == 0 or number == len(rows):
            step.update(f"{what} {number}/{len(rows)}")
    return escalated


def _now() -> datetime:
    return datetime.now(UTC)


def drift(dev: Client, start: datetime, end: datetime, rows: int) -> dict[str, Any]:
    """Drift of a window once the prediction log holds every prediction sent in it."""
    def complete() -> dict[str, Any] | None:
        result = dev.drift(DEPLOYMENT, start=start.isoformat(), end=end.isoformat(),
                           environment=ENVIRONMENT)
        return result if result["rows"] >= rows else None
    return wait_until(complete, 60, f"{rows} predictions in the prediction log")


def drifted_features(result: dict[str, Any]) -> list[str]:
    return [feature["feature"] for feature in result["features"] if feature["drifted"]]


def review_queue(reviewer: Client, expected: int) -> int:
    """The open tasks of the queue, once it holds at least ``expected`` tasks in all."""
    def arrived() -> bool | None:
        return True if queued(reviewer) >= expected else None
    wait_until(arrived, 60, "the escalated predictions to reach the review queue")
    return int(reviewer.review_tasks(queue=QUEUE, status="open", limit=1)["total"])


def queued(reviewer: Client) -> int:
    return int(reviewer.review_tasks(queue=QUEUE, limit=1)["total"])
