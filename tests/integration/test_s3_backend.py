"""The control plane with its artifacts in S3-compatible storage (a moto server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from support import ControlPlane
from threadline import Client

pytestmark = pytest.mark.integration


def test_register_and_download_through_s3(s3_endpoint: str, tmp_path: Path,
                                          iris_model: tuple[object, object]) -> None:
    model, features = iris_model
    plane = ControlPlane(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                         extra_env={"THREADLINE_ARTIFACTS_URL": "s3://threadline-test/plane",
                                    "THREADLINE_S3_ENDPOINT_URL": s3_endpoint}).start()
    try:
        with Client(plane.url, plane.token) as c:
            version = c.register_model(model, "s3-iris", training_data=features, owner="t")
            dest = c.download_artifact("s3-iris", 1, tmp_path / "model.skops")
        assert "sha256:" + hashlib.sha256(dest.read_bytes()).hexdigest() == version["artifact_digest"]
        assert not (plane.home / "artifacts").exists()
    finally:
        plane.stop()


def test_the_prediction_log_in_s3_is_read_by_monitoring(s3_endpoint: str, tmp_path: Path,
                                                        iris_model: tuple[object, object]) -> None:
    """Sealed segments reach the bucket (and leave the staging folder); drift reads them there."""
    import os
    import subprocess
    import sys

    import httpx

    from support import free_port, wait_for

    model, features = iris_model
    location = {"THREADLINE_PREDICTION_LOG_URL": "s3://threadline-test/predlog",
                "THREADLINE_S3_ENDPOINT_URL": s3_endpoint}
    plane = ControlPlane(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                         extra_env=location).start()
    try:
        with Client(plane.url, plane.token) as c:
            c.register_model(model, "iris", training_data=features, owner="t")
        port = free_port()
        serve = subprocess.Popen([sys.executable, "-m", "threadline", "serve", "-m", "iris@1", "--port", str(port),
                                  "--deployment-name", "iris-s3"], env={**os.environ, **plane.cli_env()},
                                 stdout=(tmp_path / "serve.log").open("wb"), stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(ready, timeout=60, what="the serving process")
        rows = features.iloc[:40]
        body = {"inputs": [{"name": name, "datatype": "FP64", "shape": [len(rows)], "data": rows[name].tolist()}
                           for name in rows.columns]}
        assert httpx.post(url + "/v2/models/iris/infer", json=body, headers=plane.auth(), timeout=10).status_code == 200
        serve.terminate()  # seals the segment and uploads it before exiting
        serve.wait(timeout=60)
        assert not list((plane.home / "predictions-outbox").glob("*/*/*.parquet"))
        with Client(plane.url, plane.token) as c:
            drift = c.drift("iris-s3", window="1h")
        assert drift["rows"] == 40 and drift["model"] == "iris"
    finally:
        plane.stop()
