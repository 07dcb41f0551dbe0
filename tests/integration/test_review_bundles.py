"""Context bundles end to end: a low-confidence prediction of a served pipeline becomes a signed
bundle in the review queue, survives a SIGKILL of the serving process, is resolved by a
reviewer whose label reaches accuracy monitoring, and replays exactly in another home."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

from support import ControlPlane, free_port, wait_for
from threadline import Client
from threadline.domain import errors

FEATURES = ["a", "b", "c"]
DEPLOYMENT = "triage"


def training() -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(7).normal(size=(600, 3)), columns=FEATURES)


@pytest.fixture(scope="module")
def registered(sqlite_plane: ControlPlane) -> Client:
    from sklearn.ensemble import RandomForestClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = training()
    # Labels in an object column, as a pandas frame gives them: the model answers Python strings.
    target = pd.Series(np.where(data["a"] + data["b"] > 0, "approve", "refer"), dtype=object)
    model = make_pipeline(StandardScaler(), VotingClassifier(
        [("lr", LogisticRegression()), ("rf", RandomForestClassifier(n_estimators=15, random_state=0))],
        voting="soft")).fit(data, target)
    admin = Client(sqlite_plane.url, sqlite_plane.token)
    admin.register_model(model, "triage-model", owner="default", training_data=data)
    for name, roles in (("rita", ["reviewer"]), ("rob", ["reviewer"])):
        admin.create_user(name, roles)
    return admin


def token_of(admin: Client, user: str) -> str:
    return str(admin.create_token(f"{user}-test", user=user)["token"])


def start_server(plane: ControlPlane, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "THREADLINE_HOME": str(plane.home), "THREADLINE_URL": plane.url,
           "THREADLINE_TOKEN": plane.token}
    log = (plane.home.parent / "serve-review.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "threadline", "serve", "-m", "triage-model@1", "--port",
                                str(port), "--deployment-name", DEPLOYMENT, "--escalate-below", "0.9",
                                "--escalate-rule", "c > 5", "--queue", "triage-review"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False
    wait_for(ready, timeout=60, what="the serving process")
    return process


@pytest.fixture(scope="module")
def endpoint(sqlite_plane: ControlPlane, registered: Client) -> Iterator[tuple[str, int]]:
    port = free_port()
    process = start_server(sqlite_plane, port)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        process.terminate()
        process.wait(timeout=30)


def infer(url: str, token: str, rows: pd.DataFrame, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": [{"name": c, "datatype": "FP64", "shape": [len(rows)],
                                        "data": rows[c].tolist()} for c in FEATURES]}
    if parameters:
        body["parameters"] = parameters
    response = httpx.post(url + "/v2/models/triage-model/infer", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()


BORDERLINE = pd.DataFrame({"a": [0.02, 2.5], "b": [-0.01, 2.0], "c": [0.3, 0.1]})  # unsure, then sure


def test_a_low_confidence_prediction_becomes_a_signed_bundle_a_reviewer_resolves(
        sqlite_plane: ControlPlane, registered: Client, endpoint: tuple[str, int]) -> None:
    url, _port = endpoint
    answer = infer(url, sqlite_plane.token, BORDERLINE)
    escalated = answer["parameters"]["escalated"]
    assert escalated == [True, False]
    bundle_id = answer["parameters"]["prediction_ids"][0]
    wait_for(lambda: _has_task(registered, bundle_id), timeout=30, what="the bundle to reach the queue")

    rita = Client(sqlite_plane.url, token_of(registered, "rita"))
    rob = Client(sqlite_plane.url, token_of(registered, "rob"))
    listed = rita.review_tasks(queue="triage-review")
    assert [t["bundle_id"] for t in listed["items"]] == [bundle_id] and listed["total"] == 1

    shown = rita.bundle(bundle_id)
    bundle = shown["bundle"]
    kinds = [(s["step"], s["kind"]) for s in bundle["steps"]]
    assert kinds[0] == ("standardscaler", "transform")
    assert ("votingclassifier.lr", "member") in kinds and ("votingclassifier.rf", "member") in kinds
    assert kinds[-1] == ("votingclassifier", "predict")
    assert bundle["reason"].startswith("confidence ") and bundle["confidence"] < 0.9
    assert bundle["inputs"] == {"a": 0.02, "b": -0.01, "c": 0.3}
    assert bundle["artifact_digest"] == registered.get_version("triage-model", 1)["artifact_digest"].removeprefix(
        "sha256:")
    assert shown["review"]["status"] == "open" and shown["key_id"] == registered.bundle_key()["key_id"]

    rita.claim(bundle_id)
    with pytest.raises(errors.Conflict, match="claimed by rita"):
        rob.claim(bundle_id)
    registered.create_user("val", ["viewer"])
    with pytest.raises(errors.Forbidden):
        Client(sqlite_plane.url, token_of(registered, "val")).resolve(bundle_id, "accept")
    model_label = bundle["outputs"]["label"]
    right = "refer" if model_label == "approve" else "approve"
    with pytest.raises(errors.InvalidInput, match="needs the right label"):
        rita.resolve(bundle_id, "override")
    resolved = rita.resolve(bundle_id, "override", label=right, comment="borderline; policy says refer")
    assert resolved["status"] == "resolved" and resolved["label"] == right and resolved["resolved_at"]
    with pytest.raises(errors.Conflict, match="resolved by rita"):
        rita.resolve(bundle_id, "accept")

    def labelled() -> list[dict[str, Any]]:  # once the serving process flushed its log
        return [w["quality"] for w in registered.windows(DEPLOYMENT, width="1h", window="2h")["windows"]
                if w["quality"]]
    quality = wait_for(labelled, timeout=20, what="the labelled prediction in the log")
    assert quality[-1]["count"] == 1 and quality[-1]["metrics"]["accuracy"] == 0.0
    actions = {e["action"] for e in registered.audit_entries(object=f"bundle/{bundle_id}")}
    assert {"bundle.received", "bundle.read", "review.claimed", "review.resolved"} <= actions


def test_a_rule_escalates_a_confident_prediction(sqlite_plane: ControlPlane, registered: Client,
                                                 endpoint: tuple[str, int]) -> None:
    url, _port = endpoint
    sure = pd.DataFrame({"a": [2.5, 2.5], "b": [2.0, 2.0], "c": [0.1, 6.0]})  # confident; c > 5 on the second
    answer = infer(url, sqlite_plane.token, sure)
    assert answer["parameters"]["escalated"] == [False, True]
    bundle_id = answer["parameters"]["prediction_ids"][1]
    wait_for(lambda: _has_task(registered, bundle_id), timeout=30, what="the rule's bundle")
    assert registered.bundle(bundle_id)["bundle"]["reason"] == "rule: c > 5"


def _has_task(client: Client, bundle_id: str) -> bool:
    return any(t["bundle_id"] == bundle_id for t in client.review_tasks(limit=1000)["items"])


def test_an_escalation_survives_a_sigkill_of_the_serving_process(sqlite_plane: ControlPlane,
                                                                 registered: Client) -> None:
    port = free_port()
    process = start_server(sqlite_plane, port)
    answer = infer(f"http://127.0.0.1:{port}", sqlite_plane.token, BORDERLINE.iloc[:1], escalate=True)
    assert answer["parameters"]["escalated"] == [True]
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    bundle_id = answer["parameters"]["prediction_ids"][0]
    spool = sqlite_plane.home / "bundle-spool" / DEPLOYMENT
    # Killed before shipping, or after shipping but before deleting its spooled copy: either way
    # the next process on the spool ships it (again, idempotently) and only then deletes it.
    assert _has_task(registered, bundle_id) or (spool / f"{bundle_id}.json").exists()
    restarted = start_server(sqlite_plane, free_port())
    try:
        wait_for(lambda: _has_task(registered, bundle_id) and not (spool / f"{bundle_id}.json").exists(),
                 timeout=30, what="the spooled bundle to ship")
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    data = registered.bundle(bundle_id)
    assert data["bundle"]["reason"] == "requested by the client (parameters.escalate)"


def test_feedback_reports_unknown_ids_and_wrong_label_types(sqlite_plane: ControlPlane, registered: Client,
                                                            endpoint: tuple[str, int]) -> None:
    url, _port = endpoint
    ids = infer(url, sqlite_plane.token, BORDERLINE)["parameters"]["prediction_ids"]
    time.sleep(1.0)  # the log is flushed every 0.25 s
    result = registered.feedback(DEPLOYMENT, [(ids[1], "approve"), ("no-such-prediction", "refer"),
                                              (ids[0], 3.5)])
    assert result["accepted"] == 1 and result["unknown"] == ["no-such-prediction"]
    assert [r["prediction_id"] for r in result["rejected"]] == [ids[0]]  # 3.5 names no class
    with pytest.raises(errors.InvalidInput):
        registered._call("POST", f"/api/v1/deployments/{DEPLOYMENT}/feedback",
                         json={"labels": [{"prediction_id": ids[0], "label": {"nested": 1}}]})


def test_a_bundle_exported_from_one_home_replays_exactly_in_another(
        tmp_path: Path, sqlite_plane: ControlPlane, registered: Client, endpoint: tuple[str, int]) -> None:
    url, _port = endpoint
    answer = infer(url, sqlite_plane.token, BORDERLINE.iloc[:1], escalate=True)
    bundle_id = answer["parameters"]["prediction_ids"][0]
    wait_for(lambda: _has_task(registered, bundle_id), timeout=30, what="the bundle")
    source_env = {"THREADLINE_URL": sqlite_plane.url, "THREADLINE_TOKEN": sqlite_plane.token}
    exported = tmp_path / "case.tlb"
    _cli(["bundles", "export", bundle_id, str(exported), "--with-model"], source_env)
    _cli(["bundles", "replay", bundle_id], source_env)  # exact at home first
    key_file = tmp_path / "source.pem"
    key_file.write_text(registered.bundle_key()["public_key"])

    with another_home(tmp_path / "other") as other:
        other_env = {"THREADLINE_URL": other.url, "THREADLINE_TOKEN": other.token}
        refused = _cli(["bundles", "import", str(exported)], other_env, check=False)
        assert refused.returncode == 1 and "not trusted here" in refused.stderr
        _cli(["bundles", "trust", "source-install", str(key_file)], other_env)
        _cli(["bundles", "import", str(exported)], other_env)
        replayed = _cli(["bundles", "replay", bundle_id], other_env)
        assert "steps match" in replayed.stdout
        from_file = _cli(["bundles", "replay", str(exported), "--json"], other_env)
        assert '"matches": true' in from_file.stdout

        tampered = tmp_path / "tampered.tlb"
        _rewrite(exported, tampered, "bundle.json", lambda data: data.replace(b'"c":0.3', b'"c":0.4'))
        bad = _cli(["bundles", "import", str(tampered)], other_env, check=False)
        assert bad.returncode == 1 and "tampered" in bad.stderr
        evil = tmp_path / "evil.tlb"
        _rewrite(exported, evil, "../escape.txt", lambda _data: b"x")
        bad = _cli(["bundles", "import", str(evil)], other_env, check=False)
        assert bad.returncode == 1 and ".." in bad.stderr
        assert not (tmp_path / "escape.txt").exists()


def test_a_bundle_without_its_model_cannot_replay_until_imported_with_it(
        tmp_path: Path, sqlite_plane: ControlPlane, registered: Client, endpoint: tuple[str, int]) -> None:
    url, _port = endpoint
    bundle_id = infer(url, sqlite_plane.token, BORDERLINE.iloc[:1], escalate=True)["parameters"]["prediction_ids"][0]
    wait_for(lambda: _has_task(registered, bundle_id), timeout=30, what="the bundle")
    source_env = {"THREADLINE_URL": sqlite_plane.url, "THREADLINE_TOKEN": sqlite_plane.token}
    bare = tmp_path / "bare.tlb"
    _cli(["bundles", "export", bundle_id, str(bare)], source_env)
    key_file = tmp_path / "source.pem"
    key_file.write_text(registered.bundle_key()["public_key"])
    with another_home(tmp_path / "third") as other:
        other_env = {"THREADLINE_URL": other.url, "THREADLINE_TOKEN": other.token}
        _cli(["bundles", "trust", "source-install", str(key_file)], other_env)
        _cli(["bundles", "import", str(bare)], other_env)
        missing = _cli(["bundles", "replay", bundle_id], other_env, check=False)
        assert missing.returncode == 1 and "--with-model" in missing.stderr


@contextlib.contextmanager
def another_home(folder: Path) -> Iterator[ControlPlane]:
    """A second installation, with its own database, artifacts and bundle key."""
    folder.mkdir()
    plane = ControlPlane(home=folder / "home", database_url=f"sqlite:///{folder / 'db.sqlite'}").start()
    try:
        yield plane
    finally:
        plane.stop()


def _cli(args: list[str], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "threadline", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _rewrite(source: Path, dest: Path, member: str, change: Any) -> None:
    with tarfile.open(source) as original, tarfile.open(dest, "w") as copy:
        names = original.getnames()
        for info in original.getmembers():
            data = original.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if info.name == member and data is not None:
                data = change(data)
                info.size = len(data)
            copy.addfile(info, io.BytesIO(data) if data is not None else None)
        if member not in names:
            data = change(b"")
            extra = tarfile.TarInfo(member)
            extra.size = len(data)
            copy.addfile(extra, io.BytesIO(data))
