"""End to end: `threadline up` with a Git repository. A change pushed to Git reaches the local
runtime through the governance check, and a version that answers with errors under load is
rolled back by itself to the last healthy one."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from support import ControlPlane, git, wait_for
from threadline import Client

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# A short window lets version 1 become the rollback target quickly; version 2's long window
# keeps its health checks running while the test sends it traffic.
HEALTH = {1: "{period: 1s, window: 3s, failureThreshold: 2, maxErrorRate: 0.2}",
          2: "{period: 1s, window: 60s, failureThreshold: 2, maxErrorRate: 0.2}"}


def push(repo: Path, version: int) -> None:
    (repo / "iris.yaml").write_text(
        "apiVersion: threadline/v1\nkind: ModelDeployment\n"
        "metadata: {name: iris, environment: production, owner: default}\n"
        f"spec:\n  model: iris\n  version: {version}\n  health: {HEALTH[version]}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"iris v{version}")


def infer(endpoint: str, token: str) -> httpx.Response:
    body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [1], "data": [5.0]} for c in COLUMNS]}
    return httpx.post(endpoint + "/v2/models/iris/infer", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def plane(database_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
    started = ControlPlane(home=tmp_path / "home", database_url=database_url, extra_args=["--stop-workloads"],
                           extra_env={"THREADLINE_GITOPS_REPO": str(repo), "THREADLINE_GITOPS_INTERVAL": "1",
                                      "THREADLINE_GITOPS_ENVIRONMENT": "production"}).start()
    try:
        yield started
    finally:
        started.stop()
    assert not list((tmp_path / "home" / "runtime").glob("*.json")) or \
        '"deployments": []' in (tmp_path / "home" / "runtime" / "local-runtime.json").read_text()


def test_git_change_deploys_through_governance_and_a_bad_version_rolls_back(
        plane: ControlPlane, iris_model: tuple[Any, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    model, features = iris_model
    admin = Client(plane.url, plane.token)
    admin.register_model(model, "iris", owner="default", training_data=features)
    three = features[COLUMNS[:3]]
    # Version 2 expects three features: the traffic of version 1's clients is all errors.
    admin.register_model(LogisticRegression(max_iter=300).fit(three, model.predict(features)), "iris",
                         training_data=three)
    repo = Path(plane.extra_env["THREADLINE_GITOPS_REPO"])
    push(repo, 1)
    admin.sync()
    shown = admin.deployment("iris")
    assert shown["status"] == "Blocked" and "governance" in shown["reason"]

    admin.create_user("ann", ["approver"])
    approver = Client(plane.url, admin.create_token("t", user="ann")["token"])
    for version in (1, 2):
        admin.transition_version("iris", version, "validate")
        admin.request_approval("iris", version, "production")
        approver.decide("iris", version, "production", "approve")

    first = wait_for(lambda: (d := admin.deployment("iris"))["endpoints"] and d["running"] and d, what="iris@1")
    assert first["running"].startswith("iris@1")
    assert infer(first["endpoints"][0], plane.token).json()["model_version"] == "1"
    wait_for(lambda: admin.deployment("iris")["status"] == "Synced", what="iris@1 healthy")

    push(repo, 2)
    second = wait_for(lambda: (d := admin.deployment("iris"))["running"].startswith("iris@2") and d["endpoints"]
                      and d["endpoints"] != first["endpoints"] and d, what="iris@2 running")
    stop = threading.Event()

    def traffic() -> None:  # clients of version 1 keep calling whatever runs now
        while not stop.is_set():
            for endpoint in admin.deployment("iris")["endpoints"]:
                try:
                    infer(endpoint, plane.token)
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        rolled = wait_for(lambda: (d := admin.deployment("iris"))["running"].startswith("iris@1")
                          and d["status"] == "Degraded" and d, what="rollback")
    finally:
        stop.set()
        sender.join(timeout=10)
    assert "rolling back to iris@1" in rolled["reason"]
    rollback = next(h for h in rolled["history"] if h["action"] == "rollback")
    assert rollback["evidence"]["values"]["error_rate"] > 0.2
    # Endpoints are observed at the start of each pass: the next pass shows the restored replicas.
    current = wait_for(lambda: (e := admin.deployment("iris")["endpoints"]) and e != second["endpoints"] and e,
                       what="endpoints after rollback")
    assert infer(current[0], plane.token).json()["model_version"] == "1"
    actions = {e["action"] for e in admin.audit_entries(actor="gitops-agent")}
    assert {"deployment.create", "deployment.update", "deployment.rollback"} <= actions
