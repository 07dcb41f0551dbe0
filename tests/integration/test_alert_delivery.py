"""Alerts end to end: labels that say a served model is wrong fire one accuracy alert (signed
webhook, idempotency key, event log), a breaching streak calls the retraining webhook once, and
right labels resolve the alert."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

from support import ControlPlane, free_port, wait_for
from threadline import Client
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.domain import models

FEATURES = ["x", "y"]


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def events(self, event: str) -> list[dict[str, Any]]:
        return [json.loads(body) for headers, body in self.deliveries if headers["x-threadline-event"] == event]


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    started = ControlPlane(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                           extra_env={"THREADLINE_MONITOR_INTERVAL": "0.5"}).start()
    try:
        yield started
    finally:
        started.stop()


def test_wrong_labels_fire_one_alert_and_one_retraining_call_then_right_labels_resolve_it(
        plane: ControlPlane, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    data = pd.DataFrame(np.random.default_rng(3).normal(size=(400, 2)), columns=FEATURES)
    admin = Client(plane.url, plane.token)
    admin.register_model(LogisticRegression().fit(data, np.where(data["x"] > 0, "up", "down")), "mood",
                         owner="default", training_data=data)
    receiver = Receiver()
    _declare(plane, receiver)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "threadline", "serve", "-m", "mood@1", "--port", str(port),
                               "--deployment-name", "mood-live"], env=plane.cli_env(),
                              stdout=(tmp_path / "serve.log").open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v2/models/mood/infer"
    try:
        wait_for(lambda: _ready(port), timeout=60, what="the serving process")
        # Every label contradicts the model until both alerts went out.
        wait_for(lambda: _traffic(admin, url, plane.token, wrong=True) or (
            receiver.events("alert.fired") and receiver.events("retrain.requested")), timeout=60,
            what="the accuracy alert and the retraining call")
        fired = receiver.events("alert.fired")
        assert len(fired) == 1 and fired[0]["rule"] == "accuracy" and fired[0]["severity"] == "critical"
        assert fired[0]["value"] < 0.5 and fired[0]["bound"] == 0.8
        retrain = receiver.events("retrain.requested")
        assert len(retrain) == 1 and retrain[0]["consecutive_breaches"] >= 2
        assert retrain[0]["labels_available"] > 0 and retrain[0]["deployment"] == "mood-live"
        for _ in range(6):  # still wrong: deduplicated, and the cool-down holds the retraining calls back
            _traffic(admin, url, plane.token, wrong=True)
        assert len(receiver.events("alert.fired")) == 1 and len(receiver.events("retrain.requested")) == 1

        wait_for(lambda: _traffic(admin, url, plane.token, wrong=False) or receiver.events("alert.resolved"),
                 timeout=60, what="the alert to resolve")
    finally:
        server.terminate()
        server.wait(timeout=30)

    secret = (plane.home / "webhook.secret").read_bytes().strip()
    for headers, body in receiver.deliveries:
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        assert headers["x-threadline-signature"] == expected
        assert len(headers["idempotency-key"]) == 64
    events = [e["event"] for e in admin.events("mood-live")]  # newest first
    assert [e for e in events if e.startswith("alert.")] == ["alert.resolved", "alert.fired"]
    assert events.count("retrain.triggered") == 1
    assert len(list(admin.audit_entries(action="retrain.triggered"))) == 1


def _declare(plane: ControlPlane, receiver: Receiver) -> None:
    """Stand in for the GitOps agent: record the deployment and its spec as the agent would."""
    spec = {"apiVersion": "threadline/v1", "kind": "ModelDeployment",
            "metadata": {"name": "mood-live", "environment": "production", "owner": "default"},
            "spec": {"model": "mood", "version": 1, "monitoring": {
                "accuracy": {"metric": "accuracy", "minimum": 0.8, "window": "2s", "severity": "critical",
                             "notify": [receiver.url("/alerts")]},
                "retrain": {"webhook": receiver.url("/retrain"), "after": 2, "coolDown": "1h"}}}}
    store = SqlMetadataStore(plane.database_url)
    try:
        with store.writing() as tx:
            tx.put_deployment(models.DeploymentRecord(
                name="mood-live", environment="production", spec=spec, commit="0" * 40, status="Synced",
                reason="", differences=(), state={}, updated_at=datetime.now(timezone.utc)))
    finally:
        store.close()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _traffic(admin: Client, url: str, token: str, *, wrong: bool) -> None:
    """A few predictions, then a label for each (the model's answer, or the other class)."""
    rows = np.random.default_rng().normal(size=(5, 2))
    body = {"inputs": [{"name": name, "datatype": "FP64", "shape": [5], "data": rows[:, i].tolist()}
                       for i, name in enumerate(FEATURES)]}
    answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    labels = next(o["data"] for o in answer["outputs"] if o["name"] == "label")
    ids = answer["parameters"]["prediction_ids"]
    time.sleep(0.4)  # the serving process flushes its log every 0.25 s
    flip = {"up": "down", "down": "up"}
    admin.feedback("mood-live", [(pid, flip[label] if wrong else label) for pid, label in zip(ids, labels)])
