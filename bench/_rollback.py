"""Rollback time on the local runtime, for ``bench/reconcile.py``.

A real control plane (``threadline up``) follows a Git repository with the embedded agent. Version
1 of a model is deployed and passes its health checks; version 2 expects other inputs, so the
traffic of version 1's clients is all errors. The figure is the time from the first failed health
check (its history row) to the first answer of version 1 again (client side, on the endpoint the
API reports, which is observed at the start of each pass: the figure includes up to one pass
interval of reporting delay, so it is an upper bound).
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from _plane import COLUMNS, control_plane, iris, wait
from _procs import git

INTERVAL = 0.5


def _push(repo: Path, version: int, window: str) -> None:
    (repo / "iris.yaml").write_text(
        "apiVersion: threadline/v1\nkind: ModelDeployment\nmetadata: {name: iris, environment: production, "
        f"owner: default}}\nspec:\n  model: iris\n  version: {version}\n"
        f"  health: {{period: 1s, window: {window}, failureThreshold: 2, maxErrorRate: 0.2}}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"v{version}")


def _infer(endpoint: str, token: str) -> httpx.Response:
    body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [1], "data": [5.0]} for c in COLUMNS]}
    return httpx.post(endpoint + "/v2/models/iris/infer", json=body, timeout=5, headers={"Authorization": f"Bearer {token}"})


def rollback_time() -> None:
    from sklearn.linear_model import LogisticRegression

    from threadline import Client

    model, features, target = iris()
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as scratch:
        root = Path(scratch)
        repo = root / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
        with control_plane(root, {"THREADLINE_GITOPS_REPO": str(repo), "THREADLINE_GITOPS_INTERVAL": str(INTERVAL)},
                           "--stop-workloads") as plane:
            url, token = plane.url, plane.token
            admin = Client(url, token)
            admin.register_model(model, "iris", owner="default", training_data=features)
            three = features[COLUMNS[:3]]
            admin.register_model(LogisticRegression(max_iter=300).fit(three, target), "iris",
                                 training_data=three)
            admin.create_user("ann", ["approver"])
            approver = Client(url, admin.create_token("bench", user="ann")["token"])
            for version in (1, 2):
                admin.transition_version("iris", version, "validate")
                admin.request_approval("iris", version, "production")
                approver.decide("iris", version, "production", "approve")
            _push(repo, 1, "2s")
            wait(lambda: admin.deployment("iris")["status"] == "Synced" if _exists(admin) else False, 120,
                  "version 1 healthy")
            first = admin.deployment("iris")["endpoints"]
            _push(repo, 2, "120s")
            second = wait(lambda: (d := admin.deployment("iris"))["running"].startswith("iris@2") and d["endpoints"]
                           and d["endpoints"] != first and d["endpoints"], 120, "version 2 running")
            stop = threading.Event()
            restored: list[float] = []

            def traffic() -> None:
                while not stop.is_set():
                    for endpoint in admin.deployment("iris")["endpoints"]:
                        try:
                            answer = _infer(endpoint, token)
                        except httpx.HTTPError:
                            continue
                        if answer.status_code == 200 and answer.json()["model_version"] == "1" and endpoint not in first:
                            restored.append(time.time())
                            stop.set()
                    time.sleep(0.02)

            sender = threading.Thread(target=traffic, daemon=True)
            sender.start()
            sender.join(timeout=120)
            stop.set()
            if not restored:
                raise RuntimeError("version 1 never answered again")
            history = admin.deployment("iris")["history"]
            failed = min(datetime.fromisoformat(h["time"]).timestamp() for h in history
                         if h["action"] in ("check", "rollback") and h["evidence"].get("verdict") == "fail")
            seconds = restored[0] - failed
            print(f"rollback on the local runtime: {seconds:5.2f} s from the first failed health check to version 1 "
                  f"answering again (endpoint {second[0]} -> restored)   target: under 10 s -> "
                  f"{'met' if seconds < 10 else 'NOT met'}")


def _exists(admin: Any) -> bool:
    try:
        admin.deployment("iris")
    except Exception:
        return False
    return True
