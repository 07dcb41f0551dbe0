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
