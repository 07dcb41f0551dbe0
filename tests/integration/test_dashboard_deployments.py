"""The deployment page: sync status, the evidence behind each decision, traffic, accuracy and drift
from a real prediction log, alerts; who sees what; 404, 400 and escaping."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import skops.io
from dashboard_support import Dashboard, dashboard
from support import DRIFT_FEATURES, normal_frame

from threadline.domain import access, models, prediction_ids
from threadline.gitops import spec as deployment_spec
from threadline.gitops import state
from threadline.gitops.model import Revision, Workload
from threadline.monitoring.feedback import LabelItem
from threadline.registry import profiling
from threadline.registry.requests import NewVersion
from threadline.serving import predlog

pytestmark = pytest.mark.integration

FEATURES = DRIFT_FEATURES
NAME, ENV = "scorer-live", "production"
HOSTILE = "<script>alert('x')</script>"
ADMIN = access.system("test")
NOW = datetime.now(timezone.utc)  # set again by ``board``, clear of the next hour
HOUR = NOW.replace(minute=0, second=0, microsecond=0)  # the current window starts here
PAGE = f"/deployments/{ENV}/{NAME}?hours=3&width=1h"


def _now_clear_of_the_hour(margin: timedelta = timedelta(minutes=3)) -> datetime:
    """Now, or just after the next hour if that is closer than ``margin``.

    The page groups the log by the real clock into hourly windows, so the windows these tests
    expect must not move while they run (a CI run that crossed the hour failed here).
    """
    now = datetime.now(timezone.utc)
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if next_hour - now < margin:
        time.sleep((next_hour - now).total_seconds() + 1)
        now = datetime.now(timezone.utc)
    return now


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    from sklearn.linear_model import LogisticRegression

    global NOW, HOUR
    NOW = _now_clear_of_the_hour()
    HOUR = NOW.replace(minute=0, second=0, microsecond=0)
    home = tmp_path_factory.mktemp("dashboard")
    board = dashboard(home)
    training = normal_frame(2000, seed=1)
    model = LogisticRegression().fit(training, (training["f0"] > 0).astype(int))
    digest = _register(board, model, training, home)
    _declare(board, digest)
    _log_traffic(board, model, home)
    _alert(board)
    _unprofiled(board, digest, home)
    return board


def _register(board: Dashboard, model: Any, training: pd.DataFrame, home: Path) -> str:
    """Register ``scorer`` version 1 with its training data's profile and row sample, as the SDK does."""
    path = home / "model.skops"
    skops.io.dump(model, path)
    digest = board.services.artifacts.put([path.read_bytes()]).digest
    profile, sample = profiling.compute_profile(pa.Table.from_pandas(training, preserve_index=False))
    buffer = io.BytesIO()
    pq.write_table(sample, buffer)
    sample_digest = board.services.artifacts.put([buffer.getvalue()]).digest
    board.services.registry.register_version(ADMIN, NewVersion("scorer", digest, owner="default", profile=profile,
                                                               sample_digest=sample_digest))
    return digest


def _declare(board: Dashboard, digest: str) -> None:
    """Record the deployment and its history as the GitOps agent would have."""
    spec = {"apiVersion": "threadline/v1", "kind": "ModelDeployment",
            "metadata": {"name": NAME, "environment": ENV, "owner": "default"},
            "spec": {"model": "scorer", "version": 1}}
    stable = Revision("scorer", 1, digest)
    workload = Workload(key=(NAME, ENV), stable=stable, replicas=2, serving=deployment_spec.Serving())
    condition = state.to_json(state.DeploymentState(applied=workload, healthy=workload))
    commit = "c0ffee" + "0" * 34
    history = [
        (HOUR - timedelta(hours=5), "apply", "applied", "scorer@1 applied", {}),
        (HOUR - timedelta(hours=4), "promote", "applied", "canary: 480 requests, error rate 0.002; promoting scorer@2",
         {"step": 2, "weight": 50, "verdict": "pass", "values": {
             "requests": 480, "errors": 1, "error_rate": 0.0020833, "p99_ms": 41.5, "max_error_rate": 0.01,
             "max_p99_ms": 50, "stable_requests": 470, "stable_error_rate": 0.0, "stable_p99_ms": 38.25}}),
        (HOUR - timedelta(hours=3), "rollback", "applied",
         f"health of scorer@2: error rate 0.31 > 0.05; rolling back to scorer@1 {HOSTILE}",
         {"verdict": "fail", "check": 3, "values": {
             "requests": 100, "errors": 31, "error_rate": 0.31, "p99_ms": 12.0, "max_error_rate": 0.05,
             "max_p99_ms": None, "ready": 1}, "note": HOSTILE}),
    ]
    with board.services.store.writing() as tx:
        tx.put_deployment(models.DeploymentRecord(
            name=NAME, environment=ENV, spec=spec, commit=commit, status="Degraded",
            reason=f"health checks failed {HOSTILE}", differences=(f"replicas: 2 in Git, 1 running {HOSTILE}",),
            state=condition, updated_at=HOUR - timedelta(hours=3), endpoints=("http://127.0.0.1:9001",)))
        for when, action, outcome, reason, evidence in history:
            tx.add_history(models.HistoryRecord(NAME, ENV, commit, action, outcome, state.workload_json(workload),
                                                reason, evidence, when))
        tx.put_deployment(models.DeploymentRecord(
            name="quiet", environment=ENV, spec={**spec, "metadata": {"name": "quiet", "environment": ENV}},
            commit=commit, status="Progressing", reason="waiting for its replicas", differences=(), state={},
            updated_at=NOW))
        tx.add_history(models.HistoryRecord("quiet", ENV, commit, "apply", "applied", None, "quiet applied", {},
                                            NOW - timedelta(minutes=100)))


def _log_traffic(board: Dashboard, model: Any, home: Path) -> None:
    """Two hours of logged predictions: a normal one, then one where f1 has drifted; labels for both."""
    log = predlog.PredictionLog(home / "predictions", flush_interval=60)
    labels: list[LabelItem] = []
    for hours_ago, seed, shift, wrong in ((2, 2, {}, 0), (1, 3, {"f1": 1.5}, 30)):
        data = normal_frame(300, seed, shift)
        predicted = model.predict(data)
        probabilities = model.predict_proba(data)
        for row in range(len(data)):
            when = HOUR - timedelta(hours=hours_ago) + timedelta(seconds=10 * row)
            pid = prediction_ids.new(when)
            failed = row % 50 == 0
            log.record(predlog.PredictionRecord(
                prediction_id=pid, trace_id=f"t{hours_ago}-{row}", time=when, deployment=NAME, model="scorer",
                version=1, inputs={name: float(data[name].iloc[row]) for name in FEATURES},
                outputs={"label": int(predicted[row]), "probabilities": probabilities[row].tolist()},
                confidence=float(probabilities[row].max()), latency_ms=5.0 + row % 20, escalated=False,
                status="error" if failed else "ok"))
            if row < 100:
                label = int(predicted[row]) if row >= wrong else 1 - int(predicted[row])
                labels.append(LabelItem(pid, label))
    log.close()
    result = board.services.feedback.add(ADMIN, NAME, labels)
    assert not result.unknown and not result.rejected


def _unprofiled(board: Dashboard, digest: str, home: Path) -> None:
    """``plain`` serves a version registered without training data: traffic, but no reference for drift."""
    board.services.registry.register_version(ADMIN, NewVersion("scorer", digest))
    with board.services.store.writing() as tx:
        tx.put_deployment(models.DeploymentRecord(
            name="plain", environment=ENV, spec={}, commit="1" * 40, status="Synced", reason="", differences=(),
            state={}, updated_at=NOW))
    log = predlog.PredictionLog(home / "predictions", flush_interval=60)
    for row in range(20):
        when = HOUR - timedelta(hours=1) + timedelta(seconds=row)
        log.record(predlog.PredictionRecord(
            prediction_id=prediction_ids.new(when), trace_id=f"p{row}", time=when, deployment="plain",
            model="scorer", version=2, inputs={name: 0.5 for name in FEATURES}, outputs={"label": 1},
            confidence=0.9, latency_ms=3.0, escalated=False))
    log.close()


def _alert(board: Dashboard) -> None:
    with board.services.store.writing() as tx:
        tx.put_monitor_state(models.MonitorState(NAME, ENV, "drift", "firing", HOUR - timedelta(hours=1), 2,
                                                 HOUR))
        tx.add_monitor_event(models.MonitorEvent(
            NAME, ENV, "drift", "alert.fired", "warning", HOUR - timedelta(hours=1), HOUR,
            {"drifted_features": ["f1"], "note": HOSTILE}, HOUR))


def charts(page: str) -> dict[str, dict[str, Any]]:
    """The chart specs of a page, by id."""
    return {found[1]: json.loads(found[2]) for found in
            re.finditer(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.S)}


@pytest.fixture(scope="module")
def page(board: Dashboard) -> str:
    answer = board.signed_in().get(PAGE)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_page_shows_the_sync_status(page: str) -> None:
    assert '<span class="badge status-degraded">Degraded</span>' in page
    assert "health checks failed" in page and "replicas: 2 in Git, 1 running" in page
    assert 'title="c0ffee' in page and "http://127.0.0.1:9001" in page
    assert "scorer@1 100% x2" in page  # running and last healthy


def test_each_decision_shows_its_evidence(page: str) -> None:
    history = page[page.index('id="history"'):page.index('id="traffic"')]
    rollback = history[history.index("<td>rollback</td>"):history.index("<td>promote</td>")]  # newest first
    assert "<summary>Evidence: fail</summary>" in rollback
    assert "<dt>error rate</dt>" in rollback and "<dd>0.31</dd>" in rollback and "<dd>3</dd>" in rollback
    promote = history[history.index("<td>promote</td>"):]
    assert "<dt>stable p99 ms</dt>" in promote and "<dd>38.25</dd>" in promote and "<dd>480</dd>" in promote


def test_traffic_latency_and_accuracy_are_charted_per_window(page: str) -> None:
    specs = charts(page)
    traffic = specs["chart-traffic"]
    x = traffic["x"]
    assert traffic["kind"] == "lines" and len(x) == 4 and {b - a for a, b in zip(x, x[1:])} == {3600}
    before, last = (int((HOUR - timedelta(hours=h)).timestamp()) for h in (2, 1))

    def at(chart: str, label: str) -> dict[int, Any]:
        values = next(s["values"] for s in specs[chart]["series"] if s["label"] == label)
        return dict(zip(specs[chart]["x"], values))

    assert at("chart-traffic", "requests") == {start: 300 if start in (before, last) else 0 for start in x}
    errors = at("chart-errors", "error rate")
    assert errors[before] == pytest.approx(6 / 300) and errors[x[0]] is None
    assert at("chart-latency", "p99")[last] > 20 and at("chart-latency", "p50")[x[0]] is None
    assert [s["label"] for s in specs["chart-quality"]["series"]] == ["accuracy"]
    accuracy = at("chart-quality", "accuracy")
    assert accuracy[before] == 1.0 and accuracy[last] == pytest.approx(0.7) and accuracy[x[0]] is None


def test_drift_per_feature_over_time_and_histograms(page: str) -> None:
    specs = charts(page)
    drift = {s["label"]: s["values"] for s in specs["chart-drift"]["series"]}
    assert set(FEATURES) <= set(drift) and len(specs["chart-drift"]["x"]) == 2
    assert drift["f1"][1] > drift["f1"][0] and "wasserstein" in specs["chart-drift"]["yLabel"]
    assert any(label.startswith("threshold") for label in drift)
    table = page[page.index('<table class="drift">'):]
    row = table[table.index('<th scope="row">f1</th>'):]
    assert "<strong>drifted</strong>" in row[:row.index("</tr>")]
    f0 = table[table.index('<th scope="row">f0</th>'):]
    assert "<td>no</td>" in f0[:f0.index("</tr>")]
    bars = [specs[key] for key in specs if key.startswith("chart-histogram-")]
    assert len(bars) == len(FEATURES)
    assert all(b["kind"] == "bars" and [s["label"] for s in b["series"]] == ["reference", "current"] for b in bars)
    assert all(sum(b["series"][0]["values"]) == pytest.approx(1.0) for b in bars)


def test_firing_alerts_and_events_are_listed(page: str) -> None:
    alerts = page[page.index('id="alerts"'):page.index('id="history"')]
    assert "<strong>drift</strong>" in alerts and "alert.fired" in alerts and "<dt>drifted features</dt>" in alerts


def test_every_recorded_value_is_escaped(page: str) -> None:
    assert HOSTILE not in page
    assert page.count("&lt;script&gt;alert(") >= 4  # reason, difference, rollback reason and evidence, event


def test_the_log_reads_are_audited_under_the_viewer(board: Dashboard, page: str) -> None:
    with board.services.store.reading() as tx:
        reads = [e for e in tx.audit_entries(after=0, limit=10_000)
                 if e.action == "predictions.read" and e.object == f"deployment/{NAME}"]
    purposes = {e.details["purpose"] for e in reads}
    assert {"service levels and quality", "drift"} <= purposes and {e.actor for e in reads} == {"admin"}


def test_a_viewer_without_log_access_sees_the_sync_part_only(board: Dashboard) -> None:
    client = board.signed_in(board.token_for("vera", access.Role.VIEWER))
    answer = client.get(PAGE)
    assert answer.status_code == 200
    assert "Degraded" in answer.text and "<summary>Evidence: fail</summary>" in answer.text
    assert "takes one of the roles" in answer.text and "admin" in answer.text
    assert charts(answer.text) == {}


def test_a_deployment_without_a_prediction_log_gets_short_windows(board: Dashboard) -> None:
    answer = board.signed_in().get(f"/deployments/{ENV}/quiet")
    assert answer.status_code == 200, answer.text
    assert "No prediction was logged in this span: nothing is running yet." in answer.text
    assert "in windows of 5m" in answer.text  # 100 minutes old: windows of five minutes
    assert "No traffic in this span, so no drift to report." in answer.text
    assert charts(answer.text) == {}


def test_a_version_without_a_reference_has_traffic_but_no_drift(board: Dashboard) -> None:
    answer = board.signed_in().get(f"/deployments/{ENV}/plain?hours=3&width=1h")
    assert answer.status_code == 200, answer.text
    assert "scorer@2 was registered without training data" in answer.text
    specs = charts(answer.text)
    assert sum(specs["chart-traffic"]["series"][0]["values"]) == 20 and "chart-drift" not in specs


def test_a_missing_deployment_is_a_404_page_naming_it(board: Dashboard) -> None:
    answer = board.signed_in().get(f"/deployments/{ENV}/nowhere")
    assert answer.status_code == 404 and "no deployment &#39;nowhere&#39; in environment" in answer.text


@pytest.mark.parametrize("query, says", [
    ("hours=0", "hours"), ("hours=soon", "hours"), ("hours=100000", "hours"), ("width=fortnight", "invalid duration"),
    ("width=10s", "at least a minute"), ("hours=720&width=1m", "at most 200"),
])
def test_bad_span_parameters_are_a_400_page(board: Dashboard, query: str, says: str) -> None:
    answer = board.signed_in().get(f"/deployments/{ENV}/{NAME}?{query}")
    assert answer.status_code == 400 and says in answer.text
    assert "text/html" in answer.headers["content-type"]
