"""Drift end to end: traffic sent to a served model lands in its prediction log, and the drift of
a window is flagged on exactly the features that drifted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import httpx
import pandas as pd
import pytest

from support import DRIFT_FEATURES, ControlPlane, free_port, normal_frame
from threadline import Client
from threadline.domain import errors

FEATURES = DRIFT_FEATURES


@pytest.fixture(scope="module")
def endpoint(sqlite_plane: ControlPlane) -> Iterator[str]:
    from sklearn.linear_model import LogisticRegression

    training = normal_frame(2000, seed=1)
    model = LogisticRegression().fit(training, training["f0"] > 0)
    Client(sqlite_plane.url, sqlite_plane.token).register_model(model, "scorer", owner="default", training_data=training)
    port = free_port()
    env = {**os.environ, "THREADLINE_HOME": str(sqlite_plane.home), "THREADLINE_URL": sqlite_plane.url,
           "THREADLINE_TOKEN": sqlite_plane.token}
    log = (sqlite_plane.home.parent / "serve.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "threadline", "serve", "-m", "scorer@1", "--port", str(port),
                                "--deployment-name", "scorer-live"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def send(url: str, token: str, data: pd.DataFrame) -> None:
    for start in range(0, len(data), 100):
        chunk = data.iloc[start:start + 100]
        body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [len(chunk)], "data": chunk[c].tolist()}
                           for c in FEATURES]}
        response = httpx.post(url + "/v2/models/scorer/infer", json=body, timeout=10,
                              headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()


def moment() -> datetime:
    time.sleep(0.05)
    return datetime.now(timezone.utc)


def test_drifted_traffic_is_flagged_on_exactly_the_drifted_features(sqlite_plane: ControlPlane, endpoint: str) -> None:
    admin = Client(sqlite_plane.url, sqlite_plane.token)
    before = moment()
    send(endpoint, sqlite_plane.token, normal_frame(1000, seed=2))
    between = moment()
    send(endpoint, sqlite_plane.token, normal_frame(1000, seed=3, shift={"f1": 1.0, "f3": -0.8}))
    after = moment()
    time.sleep(1.0)  # the serving process flushes its log every 0.25 s

    normal = admin.drift("scorer-live", start=before.isoformat(), end=between.isoformat())
    assert normal["rows"] == 1000 and not normal["drifted"]
    assert [f["feature"] for f in normal["features"] if f["drifted"]] == []
    drifted = admin.drift("scorer-live", start=between.isoformat(), end=after.isoformat())
    flagged = {f["feature"]: f for f in drifted["features"]}
    assert [name for name, f in flagged.items() if f["drifted"]] == ["f1", "f3"]
    assert drifted["drifted"] and drifted["drifted_share"] == 0.5
    assert flagged["f1"]["method"] == "wasserstein" and flagged["f1"]["reference_size"] == 2000
    assert flagged["f1"]["current_size"] == 1000

    with pytest.raises(errors.NotFound, match="no data"):
        admin.drift("scorer-live", start=(after + timedelta(hours=1)).isoformat(),
                    end=(after + timedelta(hours=2)).isoformat())
    assert any(e["action"] == "predictions.read" for e in admin.audit_entries(object="deployment/scorer-live"))


def test_a_corrupted_log_file_is_skipped_and_reported(sqlite_plane: ControlPlane, endpoint: str) -> None:
    admin = Client(sqlite_plane.url, sqlite_plane.token)
    before = moment()
    send(endpoint, sqlite_plane.token, normal_frame(200, seed=4))
    after = moment()
    time.sleep(1.0)
    folder = next((sqlite_plane.home / "predictions" / "deployment=scorer-live").iterdir())
    (folder / "part-broken-1.parquet").write_bytes(b"PAR1 not really parquet")
    result: dict[str, Any] = admin.drift("scorer-live", start=before.isoformat(), end=after.isoformat())
    assert result["rows"] == 200
    assert any("part-broken-1.parquet: unreadable, skipped" in p for p in result["problems"])
    (folder / "part-broken-1.parquet").unlink()


def test_the_html_report_has_a_histogram_per_feature_and_loads_nothing(sqlite_plane: ControlPlane,
                                                                        endpoint: str) -> None:
    admin = Client(sqlite_plane.url, sqlite_plane.token)
    before = moment()
    send(endpoint, sqlite_plane.token, normal_frame(300, seed=5, shift={"f2": 2.0}))
    after = moment()
    time.sleep(1.0)
    page = admin.drift_report("scorer-live", start=before.isoformat(), end=after.isoformat())
    assert page.count("<svg") == len(FEATURES) and "f2" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    data = admin.drift("scorer-live", start=before.isoformat(), end=after.isoformat())
    assert data["histograms"] == {}  # only on request


def test_labels_from_a_csv_file_through_the_cli(sqlite_plane: ControlPlane, endpoint: str, tmp_path: Path) -> None:
    body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [2], "data": [0.5, -0.5]} for c in FEATURES]}
    answer = httpx.post(endpoint + "/v2/models/scorer/infer", json=body, timeout=10,
                        headers={"Authorization": f"Bearer {sqlite_plane.token}"}).json()
    ids = answer["parameters"]["prediction_ids"]
    time.sleep(1.0)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"prediction_id,label\n{ids[0]},True\n{ids[1]},False\nnot-logged,True\n")
    done = sqlite_plane.cli("feedback", "scorer-live", str(labels), check=True)
    assert "2 labels kept, 1 unknown prediction ids, 0 refused" in done.stdout
    broken = tmp_path / "broken.csv"
    broken.write_text("id,truth\nx,1\n")
    refused = sqlite_plane.cli("feedback", "scorer-live", str(broken))
    assert refused.returncode == 1 and "broken.csv:1: the CSV header must name prediction_id and label" in refused.stderr
