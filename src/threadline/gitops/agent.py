"""The GitOps agent: one pass reads Git, asks governance, plans, applies and records.

A pass is: fetch the source and resolve its ref to a commit (a force push is noticed and
audited), read the YAML at that commit only, resolve every spec's version or alias to a digest
and run the governance check with the spec, observe the runtime once, sample the metrics of
the deployments whose checks are due, plan (pure), then carry the plan out action by action.
The executor decides nothing: each action is applied through the runtime, the state that
follows is ``planner.advance``'s, and the condition, the history row and the audit entry are
written together. A pass interrupted anywhere converges on the next one, because the runtime's
``apply`` is idempotent and the plan is recomputed from what is observed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import errors, models
from threadline.gitops import documents, planner
from threadline.gitops import spec as deployment_spec
from threadline.gitops.model import Key, Revision, key_text
from threadline.gitops.state import DeploymentState, from_json, to_json, workload_json
from threadline.governance.service import Governance
from threadline.registry.service import Registry

log = logging.getLogger("threadline.gitops")
ACTOR = "gitops-agent"


class Snapshot(Protocol):
    commit: str
    files: dict[str, bytes]
    problems: tuple[str, ...]


class Source(Protocol):
    """Where the specs come from (``adapters.git_source.GitSource``)."""

    @property
    def redacted_url(self) -> str: ...

    def fetch(self) -> None: ...

    def resolve(self) -> str: ...

    def snapshot(self, commit: str) -> Snapshot: ...

    def is_ancestor(self, old: str, new: str) -> bool: ...


@dataclass(frozen=True)
class PassResult:
    commit: str
    plan: planner.Plan
    problems: tuple[str, ...]     # documents that did not load, by file and line
    failures: tuple[str, ...] = ()  # actions the runtime refused
    dry_run: bool = False


class Agent:
    def __init__(self, source: Source, runtime: ports.Runtime, environment: str, *, store: ports.MetadataStore,
                 audit: AuditLog, clock: ports.Clock, registry: Registry, governance: Governance) -> None:
        self._source = source
        self._runtime = runtime
        self._environment = environment
        self._store = store
        self._audit = audit
        self._clock = clock
        self._registry = registry
        self._governance = governance
        self._lock = threading.Lock()  # one pass at a time: the timer and POST /sync may meet
        self._parsed: documents.ParseCache = {}  # unchanged files are not parsed again

    @property
    def environment(self) -> str:
        return self._environment

    def sync(self, *, dry_run: bool = False) -> PassResult:
        with self._lock:
            commit = self._pull(record=not dry_run)
            snapshot = self._source.snapshot(commit)
            found, refused = documents.load_snapshot(snapshot.files, self._parsed)
            problems = (*snapshot.problems, *(str(e) for e in refused))
            memo: dict[tuple[str, ...], planner.Desired] = {}
            desired = {d.key: self._desired(d, memo) for d in found if d.metadata.environment == self._environment}
            for item in desired.values():
                self._runtime.declare(item.deployment)
            records = self._records()
            inp = planner.PassInput(commit=commit, desired=desired, observed=self._runtime.observe(),
                                    states={key: from_json(dict(r.state)) for key, r in records.items()},
                                    now=self._clock.now(), load_errors=tuple(problems))
            inp = dataclasses.replace(inp, samples={key: self._runtime.sample(key) for key in planner.needs_sample(inp)})
            plan = planner.plan(inp)
            if dry_run:
                return PassResult(commit, plan, tuple(problems), dry_run=True)
            failures = tuple(filter(None, (self._carry_out(inp, action, records.get(action.key))
                                           for action in plan.actions)))
            return PassResult(commit, plan, tuple(problems), failures)

    # -- reading ------------------------------------------------------------------------

    def _pull(self, *, record: bool) -> str:
        self._source.fetch()
        commit = self._source.resolve()
        source = self._source.redacted_url
        with self._store.reading() as tx:
            previous = tx.source_commit(source)
        if record and previous != commit:
            rewritten = previous is not None and not self._source.is_ancestor(previous, commit)
            with self._store.writing() as tx:
                tx.set_source_commit(source, commit, time=self._clock.now())
                if rewritten:
                    self._audit.record(tx, ACTOR, "gitops.force-push", f"source/{source}"[:255],
                                       {"from": previous, "to": commit})
            if rewritten:
                log.warning("%s was rewritten: %s is not an ancestor of %s", source, previous, commit)
        return commit

    def _desired(self, deployment: deployment_spec.ModelDeployment,
                 memo: dict[tuple[str, ...], planner.Desired]) -> planner.Desired:
        """Resolve the spec's version or alias and run the governance check with the spec.

        Many deployments share a model version: within one pass the answer for the same
        version, environment and governed spec fields is computed once.
        """
        body = deployment.spec
        ref: str | int = body.version if body.version is not None else str(body.alias)
        key = (body.model, str(ref), deployment.metadata.environment,
               body.monitoring.model_dump_json(), body.escalation.model_dump_json() if body.escalation else "")
        known = memo.get(key)
        if known is None:
            known = memo[key] = self._resolve(deployment, ref)
        return dataclasses.replace(known, deployment=deployment)

    def _resolve(self, deployment: deployment_spec.ModelDeployment, ref: str | int) -> planner.Desired:
        body = deployment.spec
        try:
            version = self._registry.get_version(body.model, ref)
        except errors.NotFound as exc:
            return planner.Desired(deployment, None, problem=str(exc))
        revision = Revision(body.model, version.version, version.artifact_digest)
        report = self._governance.check(body.model, version.version, deployment.metadata.environment, body)
        return planner.Desired(deployment, revision,
                               gate_failures=tuple(f"{g.name}: {g.reason}" for g in report.failures()))

    def _records(self) -> dict[Key, models.DeploymentRecord]:
        with self._store.reading() as tx:
            return {(r.name, r.environment): r for r in tx.deployments(self._environment)}

    # -- executing ----------------------------------------------------------------------

    def _carry_out(self, inp: planner.PassInput, action: planner.Action,
                   previous: models.DeploymentRecord | None) -> str | None:
        """Apply one action and record what followed; return the failure, if any."""
        failure: errors.RuntimeFailure | None = None
        try:
            if action.kind in planner.APPLYING and action.workload is not None:
                self._runtime.apply(action.workload)
            elif action.kind is planner.Kind.DELETE:
                self._runtime.delete(action.key)
        except errors.RuntimeFailure as exc:
            failure = exc
        desired = inp.desired.get(action.key)
        state = inp.states.get(action.key, DeploymentState())
        after = planner.advance(state, action, commit=inp.commit, now=inp.now, desired=desired,
                                sample=inp.samples.get(action.key) if action.kind is planner.Kind.CHECK else None,
                                failed=failure is not None)
        self._record(inp, action, desired, state, after, failure, previous)
        return None if failure is None else f"{key_text(action.key)}: {failure}"

    def _record(self, inp: planner.PassInput, action: planner.Action, desired: planner.Desired | None,
                before: DeploymentState, after: DeploymentState, failure: errors.RuntimeFailure | None,
                previous: models.DeploymentRecord | None) -> None:
        """Write the condition, history and audit entry of one action, in one transaction;
        a deployment whose condition and state did not change costs no write at all."""
        name, environment = action.key
        status, reason = action.status.value, action.reason
        evidence: dict[str, Any] = dict(action.evidence)
        if failure is not None:
            status, reason = planner.Status.DEGRADED.value, f"{action.kind.value} failed: {failure}"
            evidence["runtime"] = failure.evidence
        gone = action.kind is planner.Kind.DELETE or (desired is None and action.kind is planner.Kind.NOOP
                                                      and inp.observed.get(action.key) is None)
        spec_json = desired.deployment.model_dump(mode="json", by_alias=True) if desired else \
            (dict(previous.spec) if previous else {})
        history = _worth_recording(action, previous, status, failure)
        # ``commit`` is the commit of the last change to this deployment, so a commit that
        # touches one file rewrites one row, not every row.
        observed = inp.observed.get(action.key)
        endpoints = observed.endpoints if observed is not None else ()
        changed = history or previous is None or (previous.spec, previous.status, previous.reason,
                                                  previous.differences, previous.state, previous.endpoints) != (
            spec_json, status, reason, action.differences, to_json(after), endpoints)
        if not changed and not gone:
            return
        record = models.DeploymentRecord(name, environment, spec_json, inp.commit, status, reason,
                                         action.differences, to_json(after), inp.now, endpoints)
        with self._store.writing() as tx:
            if gone:
                tx.delete_deployment(name, environment)
            else:
                tx.put_deployment(record)
            if not history:
                return
            outcome = "failed" if failure else {planner.Kind.BLOCKED: "blocked", planner.Kind.CHECK: "checked",
                                                planner.Kind.NOOP: "observed"}.get(action.kind, "applied")
            tx.add_history(models.HistoryRecord(
                name, environment, inp.commit, action.kind.value, outcome, workload_json(action.workload), reason,
                evidence, inp.now))
            self._audit.record(tx, ACTOR, f"deployment.{action.kind.value}", f"deployment/{environment}/{name}", {
                "commit": inp.commit, "outcome": outcome, "reason": reason, "evidence": evidence,
                "workload": workload_json(action.workload), "differences": list(action.differences),
                "previous": workload_json(before.applied)})


def _worth_recording(action: planner.Action, previous: models.DeploymentRecord | None, status: str,
                     failure: errors.RuntimeFailure | None) -> bool:
    """Every change, decision and failure is history; a condition that stays is not."""
    if failure is not None or action.kind in planner.APPLYING or action.kind in (planner.Kind.DELETE,
                                                                                  planner.Kind.VERIFIED):
        return True
    if action.kind is planner.Kind.CHECK:
        return action.evidence.get("verdict") != "pass"
    return previous is None or previous.status != status or (
        action.kind is planner.Kind.BLOCKED and previous.reason != action.reason)


class AgentLoop:
    """Runs a pass every ``interval`` seconds, or at once when ``trigger`` is called (a Git
    webhook through ``POST /api/v1/sync``). A failed pass is logged and retried next time.

    ``wait_until`` holds the first pass back until it returns True: the serve processes the
    runtime starts fetch artifacts from the control plane, which must be listening first.
    """

    def __init__(self, agent: Agent, interval: float, *, runtime: ports.Runtime,
                 wait_until: Callable[[], bool] | None = None) -> None:
        self.agent = agent
        self.runtime = runtime
        self._interval = interval
        self._wait_until = wait_until
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gitops-agent", daemon=True)
        self.last_error: str | None = None
        self.stop_workloads_on_exit = False
        self._stopped = False

    def start(self) -> None:
        self.runtime.start()
        self._thread.start()

    def trigger(self) -> None:
        self._wake.set()

    def stop(self, *, stop_workloads: bool = False) -> None:
        """End the loop; workloads keep running (the next agent adopts them) unless asked."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
        if stop_workloads:
            self.runtime.stop_all()
        self.runtime.close()

    def _run(self) -> None:
        while self._wait_until is not None and not self._stop.is_set() and not self._wait_until():
            self._stop.wait(0.2)
        while not self._stop.is_set():
            try:
                result = self.agent.sync()
                self.last_error = None
                for failure in result.failures:
                    log.warning("gitops: %s", failure)
            except errors.ThreadlineError as exc:
                self.last_error = str(exc)
                log.warning("gitops pass failed: %s", exc)
            except Exception as exc:  # a bug must not stop the loop; the next pass retries
                self.last_error = f"internal error: {type(exc).__name__}"
                log.error("gitops pass failed", exc_info=exc)
            self._wake.wait(self._interval)
            self._wake.clear()
