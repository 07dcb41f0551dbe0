"""Capacity end to end: the local runtime scales a deployment with load and back, a deployment
without enough measurements gets no recommendation, and a recommendation from measured usage
becomes a reviewable diff of the spec in a Git checkout; the cost report prices it."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from support import ControlPlane, git, wait_for
from threadline import Client
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.domain import models

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPEC = """apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: iris, environment: staging, owner: default}
spec:
  model: iris
  version: 1
  # sized by guesswork: see `threadline recommend`
  replicas: {min: 1, max: 3, targetConcurrency: 0.5, scaleDownStabilization: 2s, idleAfter: 4s}
  resources: {cpu: "2", memory: 4Gi}
"""


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "iris.yaml").write_text(SPEC)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "iris")
    started = ControlPlane(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                           extra_args=["--stop-workloads"],
                           extra_env={"THREADLINE_GITOPS_REPO": str(repo), "THREADLINE_GITOPS_INTERVAL": "1",
                                      "THREADLINE_GITOPS_ENVIRONMENT": "staging",
                                      "THREADLINE_CAPACITY_INTERVAL": "1"}).start()
    try:
        yield started
    finally:
        started.stop()


def replicas(admin: Client) -> int:
    return len(admin.deployment("iris", "staging")["endpoints"])


def test_the_local_runtime_scales_with_load_and_back(plane: ControlPlane, iris_model: tuple[Any, Any]) -> None:
    model, features = iris_model
    admin = Client(plane.url, plane.token)
    admin.register_model(model, "iris", owner="default", training_data=features)
    admin.sync()
    endpoint = wait_for(lambda: (d := admin.deployment("iris", "staging"))["endpoints"] and d["endpoints"][0],
                        what="iris running")
    stop = threading.Event()

    def load() -> None:
        body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [1], "data": [5.0]} for c in COLUMNS]}
        with httpx.Client(headers={"Authorization": f"Bearer {plane.token}"}, timeout=10) as http:
            while not stop.is_set():
                try:
                    http.post(endpoint + "/v2/models/iris/infer", json=body)
                except httpx.HTTPError:
                    pass

    senders = [threading.Thread(target=load, daemon=True) for _ in range(6)]
    for sender in senders:
        sender.start()
    try:
        wait_for(lambda: replicas(admin) > 1, timeout=60, what="a scale-up under load")
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=10)
    # The endpoints can show a single replica for a moment while a new one starts (seen in CI,
    # 2 runs of 7): wait for the autoscaler's own scale-down first, then for one replica.
    wait_for(lambda: any(h["action"] == "autoscale" and h["outcome"] == "applied" and h["evidence"]["to"] == 1
                         for h in admin.deployment("iris", "staging")["history"]),
             timeout=60, what="the scale-down once idle")
    wait_for(lambda: replicas(admin) == 1, timeout=60, what="one replica after the scale-down")
    history = admin.deployment("iris", "staging")["history"]
    scaled = [h for h in history if h["action"] == "autoscale" and h["outcome"] == "applied"]
    assert any(h["evidence"]["to"] > h["evidence"]["from"] for h in scaled)
    assert any(h["evidence"]["to"] == 1 for h in scaled), history
    assert all(h["reason"] for h in scaled)
    # Scaling within the spec's bounds is not drift: the deployment settles as Synced.
    wait_for(lambda: admin.deployment("iris", "staging")["status"] == "Synced", timeout=90, what="Synced")

    refused = plane.cli("recommend", "iris", "--env", "staging")
    assert refused.returncode == 1 and "not enough data:" in refused.stderr and "of 60 needed" in refused.stderr


def test_a_recommendation_becomes_a_diff_of_the_spec_and_the_cost_report_prices_it(
        plane: ControlPlane, iris_model: tuple[Any, Any], tmp_path: Path) -> None:
    model, features = iris_model
    admin = Client(plane.url, plane.token)
    admin.register_model(model, "iris", owner="default", training_data=features)
    admin.sync()
    wait_for(lambda: admin.deployment("iris", "staging")["endpoints"], what="iris running")
    _measured(plane, minutes=180)

    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(tmp_path / "repo"), str(checkout))
    shown = plane.cli("recommend", "iris", "--env", "staging", "--window", "1d", check=True)
    assert "expected saving" in shown.stdout and "cpu_p90" in shown.stdout
    written = plane.cli("recommend", "iris", "--env", "staging", "--window", "1d", "--write", "--checkout",
                        str(checkout), check=True)
    assert '-  resources: {cpu: "2", memory: 4Gi}' in written.stdout
    text = (checkout / "iris.yaml").read_text()
    assert "# sized by guesswork: see `threadline recommend`" in text  # comments survive
    assert 'cpu: "250m"' in text or "cpu: 250m" in text
    elsewhere = tmp_path / "another-repo"
    elsewhere.mkdir()
    missing = plane.cli("recommend", "iris", "--env", "staging", "--window", "1d", "--write", "--checkout",
                        str(elsewhere))
    assert missing.returncode == 1 and "no ModelDeployment iris (staging)" in missing.stderr

    usage = admin.deployment("iris", "staging")["utilization"]  # measured against requested, last hour
    assert usage["cpu_cores_requested"] == 2.0 and 0 < usage["cpu_utilization"] < 0.2
    assert usage["gpu_utilization"] is None
    shown = plane.cli("deployments", "show", "iris", "--env", "staging", check=True)
    assert "no GPU data" in shown.stdout and "of 2 cores" in shown.stdout

    report = admin.cost(by="team", since="1d")
    [row] = report["items"]
    # Three hours stood in, plus the minutes the live sampler measured of the real replica while
    # the test ran (one on a slow CI run).
    assert row["name"] == "default" and 3.0 <= row["replica_hours"] <= 3.0 + 5 / 60
    assert row["cost"] > 0 and row["cost_per_1000"] > 0 and 0 < row["cpu_utilization"] < 0.2
    assert row["potential_saving"] > 0
    csv_file = tmp_path / "cost.csv"
    plane.cli("cost", "--by", "deployment", "--since", "1d", "--csv", str(csv_file), check=True)
    assert csv_file.read_text().splitlines()[0].startswith("name,")


def _measured(plane: ControlPlane, minutes: int) -> None:
    """Stand in for three hours of sampling: a small model that uses a tenth of what it asks for."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    samples = [models.MinuteSample(minute=now - timedelta(minutes=m), replica="r1", cpu_cores=0.12 + (m % 7) / 100,
                                   rss_bytes=(300 + m % 11) << 20, requests=600, errors=0, p99_ms=8.0,
                                   queue_depth=0, batch_rows=1.0)
               for m in range(1, minutes + 1)]
    store = SqlMetadataStore(plane.database_url)
    try:
        with store.writing() as tx:
            tx.put_utilization("iris", "staging", samples)
    finally:
        store.close()
