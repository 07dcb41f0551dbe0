"""The alert rules of every deployment, evaluated on a schedule (use case).

Each pass reads the deployments the GitOps agent recorded, and for each rule in a spec's
``monitoring`` (drift, accuracy, latency p99, error rate) judges the windows that closed since
the rule was last judged (``alerts.step`` keeps the state machine; this module only feeds it
and acts on its transitions). A transition is written to the event log and queued, in the
same transaction, to the rule's ``notify`` webhooks with an idempotency key. A breaching streak
of ``retrain.after`` windows calls the retraining webhook or the operator-listed command, at
most once per cool-down; each call is recorded and audited.

Windows are aligned to the epoch (``service.aligned``), so a restart, or two control planes,
judge the same windows; a window is judged once it is ``SETTLE`` past its end, so the log has
been flushed. At most ``LOOKBACK`` windows are caught up after a pause.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterator

import orjson

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import errors, models
from threadline.gitops import spec as deployment_spec
from threadline.monitoring import accuracy, alerts, latency
from threadline.monitoring.log_location import LogLocation
from threadline.monitoring.service import Monitoring, aligned

log = logging.getLogger("threadline.monitoring")

SETTLE = timedelta(seconds=5)
LOOKBACK = 24
ACTOR = "monitor"


@dataclass(frozen=True)
class Rule:
    name: str                   # drift | accuracy | p99_ms | error_rate
    width: timedelta
    route: deployment_spec.AlertRoute


class AlertEvaluator:
    def __init__(self, store: ports.MetadataStore, audit: AuditLog, clock: ports.Clock, monitoring: Monitoring,
                 *, retrain_commands: dict[str, list[str]], log: LogLocation,
                 run_command: Callable[[list[str], bytes], None] | None = None) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._monitoring = monitoring
        self._commands = retrain_commands
        self._log = log
        self._run_command = run_command or _run_in_background

    def evaluate(self) -> int:
        """One pass over every deployment; returns the number of transitions."""
        with self._store.reading() as tx:
            records = [r for r in tx.deployments() if r.spec]
        transitions = 0
        for record in records:
            try:
                document = deployment_spec.ModelDeployment.model_validate(dict(record.spec), by_alias=True,
                                                                           by_name=False)
                transitions += self._deployment(record, document.spec)
            except Exception:  # one broken deployment must not stop the others' alerts
                log.exception("evaluating the alert rules of %s/%s failed", record.environment, record.name)
        return transitions

    def _deployment(self, record: models.DeploymentRecord, spec: deployment_spec.DeploymentSpec) -> int:
        now = self._clock.now()
        with self._store.reading() as tx:
            states = {s.rule: s for s in tx.monitor_states(record.name, record.environment)}
        transitions = 0
        for rule in _rules(spec.monitoring):
            state = states.get(rule.name)
            for start, end in self._due(state, rule.width, now):
                verdict = self._judge(record.name, rule, spec.monitoring, start, end)
                current = None if state is None else alerts.AlertState(
                    state.rule, "firing" if state.status == "firing" else "ok", state.since, state.consecutive,
                    state.last_window_end)
                moved, transition = alerts.step(current, verdict, end)
                state = models.MonitorState(record.name, record.environment, rule.name, moved.status, moved.since,
                                            moved.consecutive, moved.last_window_end)
                with self._store.writing() as tx:
                    tx.put_monitor_state(state)
                    if transition is not None:
                        transitions += 1
                        self._notify(tx, record, rule, transition, verdict, moved, start, end, now)
                if verdict.breached and spec.monitoring.retrain is not None:
                    self._maybe_retrain(record, spec, rule, verdict, moved.consecutive, start, end, now)
        return transitions

    @staticmethod
    def _due(state: models.MonitorState | None, width: timedelta,
             now: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The closed windows not judged yet, oldest first (the newest one on a first pass)."""
        latest = now - SETTLE
        last = None if state is None else state.last_window_end
        start = latest - width * LOOKBACK if last is None else max(last, latest - width * LOOKBACK)
        closed = [(a, b) for a, b in aligned(start, latest, width, limit=LOOKBACK + 2) if b <= latest]
        if last is None:
            closed = closed[-1:]
        yield from ((a, b) for a, b in closed if last is None or b > last)

    def _judge(self, deployment: str, rule: Rule, monitoring: deployment_spec.Monitoring, start: datetime,
               end: datetime) -> alerts.Verdict:
        if rule.name == "drift":
            assert monitoring.drift is not None
            try:
                result = self._monitoring.drift_of(deployment, start, end, monitoring.drift)
            except errors.NotFound as exc:
                return alerts.Verdict("drift", None, None, None, str(exc))
            data = result.dataset
            drifted = [f.feature for f in data.features if f.drifted]
            return alerts.Verdict("drift", data.drifted_share, data.share, data.drifted,
                                  f"{len(drifted)} of {len(data.features)} features drifted"
                                  + (f": {', '.join(drifted[:10])}" if drifted else ""))
        report = self._monitoring.window(deployment, start, end)
        if rule.name == "accuracy":
            wanted = monitoring.accuracy
            assert wanted is not None
            if report.quality is None:
                return alerts.Verdict("accuracy", None, wanted.minimum if wanted.maximum is None else wanted.maximum,
                                      None, "no labels in this window")
            verdict = accuracy.check(report.quality, wanted.metric, wanted.minimum, wanted.maximum)
            return alerts.Verdict("accuracy", verdict.value, verdict.bound, verdict.breached, verdict.detail)
        slo = monitoring.latency
        assert slo is not None
        (verdict,) = latency.check(report.levels, slo.p99_ms if rule.name == "p99_ms" else None,
                                   slo.max_error_rate if rule.name == "error_rate" else None)
        return verdict

    def _notify(self, tx: ports.WriteTransaction, record: models.DeploymentRecord, rule: Rule,
                transition: alerts.Transition, verdict: alerts.Verdict, state: alerts.AlertState, start: datetime,
                end: datetime, now: datetime) -> None:
        body = alerts.notification(record.name, record.environment, rule.name, rule.route.severity, transition,
                                   verdict, start, end)
        tx.add_monitor_event(models.MonitorEvent(record.name, record.environment, rule.name, body["event"],
                                                 rule.route.severity, start, end, body, now))
        assert state.since is not None
        key = alerts.idempotency_key(record.name, rule.name, transition, state.since)
        payload = json.dumps({**body, "idempotency_key": key})
        for url in rule.route.notify:
            tx.enqueue_webhook(body["event"], payload, time=now, url=url, idempotency_key=key)
        log.warning("%s %s on %s/%s: %s", rule.name, transition, record.environment, record.name, verdict.detail)

    def _maybe_retrain(self, record: models.DeploymentRecord, spec: deployment_spec.DeploymentSpec, rule: Rule,
                       verdict: alerts.Verdict, consecutive: int, start: datetime, end: datetime,
                       now: datetime) -> None:
        retrain = spec.monitoring.retrain
        assert retrain is not None
        with self._store.writing() as tx:  # one writer at a time: two passes never both trigger
            last = tx.monitor_events(deployment=record.name, environment=record.environment,
                                     event="retrain.triggered", limit=1)
            decision = alerts.should_retrain(consecutive, retrain.after, last[0].time if last else None, now,
                                             timedelta(seconds=retrain.cool_down))
            if not decision.trigger:
                return
            context = self._context(tx, record, spec, rule, verdict, consecutive, start, end, decision.reason)
            target = "webhook" if retrain.webhook else f"command {retrain.command}"
            tx.add_monitor_event(models.MonitorEvent(record.name, record.environment, rule.name, "retrain.triggered",
                                                     "info", start, end, {**context, "target": target}, now))
            self._audit.record(tx, ACTOR, "retrain.triggered", f"deployment/{record.environment}/{record.name}",
                               {"rule": rule.name, "window_end": end.isoformat(), "target": target,
                                "reason": decision.reason})
            if retrain.webhook:
                key = alerts.idempotency_key(record.name, f"retrain:{rule.name}", "fired", end)
                tx.enqueue_webhook("retrain.requested", json.dumps(context), time=now, url=retrain.webhook,
                                   idempotency_key=key)
        if retrain.command:
            argv = self._commands.get(retrain.command)
            if argv is None:
                log.error("%s/%s asks for retrain command %r, which THREADLINE_RETRAIN_COMMANDS does not list",
                          record.environment, record.name, retrain.command)
                return
            self._run_command(argv, orjson.dumps(context))

    def _context(self, tx: ports.ReadTransaction, record: models.DeploymentRecord,
                 spec: deployment_spec.DeploymentSpec, rule: Rule, verdict: alerts.Verdict, consecutive: int,
                 start: datetime, end: datetime, reason: str) -> dict[str, object]:
        """What a retraining job needs to start: the statistics, and where the data lives."""
        labels = len(tx.feedback(record.name, start, end))
        applied = record.state.get("applied") or {}
        served = [revision for revision in (applied.get("stable"), applied.get("canary")) if revision]
        return {
            "event": "retrain.requested", "deployment": record.name, "environment": record.environment,
            "git_commit": record.commit, "model": spec.model, "served": served, "rule": rule.name,
            "window": {"start": start.isoformat(), "end": end.isoformat()}, "consecutive_breaches": consecutive,
            "reason": reason, "statistics": asdict(verdict),
            "reference": {"model": spec.model, "profile": f"/api/v1/models/{spec.model}/versions/"
                                                          f"{spec.version or spec.alias}/profile"},
            "recent_log": {"location": f"{self._log}/deployment={record.name}",
                           "from": start.isoformat(), "to": end.isoformat()},
            "labels_available": labels,
        }


def _rules(monitoring: deployment_spec.Monitoring) -> list[Rule]:
    rules = []
    if monitoring.drift is not None:
        rules.append(Rule("drift", timedelta(seconds=monitoring.drift.window), monitoring.drift))
    if monitoring.accuracy is not None:
        rules.append(Rule("accuracy", timedelta(seconds=monitoring.accuracy.window), monitoring.accuracy))
    slo = monitoring.latency
    if slo is not None:
        for name, bound in (("p99_ms", slo.p99_ms), ("error_rate", slo.max_error_rate)):
            if bound is not None:
                rules.append(Rule(name, timedelta(seconds=slo.window), slo))
    return rules


def _run_in_background(argv: list[str], context: bytes) -> None:
    """Start an operator-listed retraining command with the context on stdin; never wait for it."""
    def run() -> None:
        try:
            done = subprocess.run(argv, input=context, capture_output=True, timeout=3600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("retrain command %s failed to run: %s", argv[0], exc)
            return
        if done.returncode != 0:
            log.error("retrain command %s exited with %d: %s", argv[0], done.returncode,
                      done.stderr.decode(errors="replace")[-500:])
    threading.Thread(target=run, name="retrain-command", daemon=True).start()


class MonitorLoop:
    """``threadline up`` runs the evaluator every ``interval`` seconds in a background thread."""

    def __init__(self, evaluator: AlertEvaluator, interval: float) -> None:
        self._evaluator = evaluator
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._evaluator.evaluate()
            except Exception:
                log.exception("alert evaluation pass failed")
