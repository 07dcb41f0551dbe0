"""The control plane over real HTTP: SDK round trip, closed-by-default routes, bad input."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from threadline import Client
from threadline.adapters.clock import SystemClock
from threadline.adapters.signing import Ed25519Signer
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.audit.log import AuditLog
from threadline.domain import access, errors
from threadline.identity.service import Identity

from support import ControlPlane

pytestmark = pytest.mark.integration


def client(plane: ControlPlane) -> Client:
    return Client(plane.url, plane.token)


def audit_count(plane: ControlPlane) -> int:
    return int(client(plane).audit_verify()["entries"])


def test_sdk_round_trip(shared_plane: ControlPlane, iris_model: tuple[object, object], tmp_path: Path) -> None:
    model, features = iris_model
    data = tmp_path / "train.parquet"
    features.to_parquet(data)  # type: ignore[attr-defined]
    with client(shared_plane) as c:
        v1 = c.register_model(model, "iris", training_data=data, metrics={"accuracy": 0.97},
                              card={"intended_use": {"primary_uses": ["demo"]}}, risk="limited", owner="team-a",
                              lineage={"code_repo": "https://git.example/iris", "code_commit": "abc123"})
        v2 = c.register_model(model, "iris", training_data=features,
                              lineage={"parent_version": 1})
        assert (v1["version"], v2["version"]) == (1, 2)
        assert v1["lineage"]["training_data"][0]["uri"] == data.resolve().as_uri()
        assert v1["lineage"]["training_data"][0]["digest"] == hashlib.sha256(data.read_bytes()).hexdigest()
        assert v1["lineage"]["code_commit"] == "abc123" and v2["lineage"]["parent_version"] == 1
        assert v1["has_profile"] and "profile" not in v1
        profile = c.get_profile("iris", 1)
        assert profile["row_count"] == 150 and set(profile["columns"]) == set(features.columns)  # type: ignore[attr-defined]
        sample = tmp_path / "sample.parquet"
        sample.write_bytes(b"".join(_download(c, profile["sample"]["digest"])))
        import pyarrow.parquet as pq
        assert pq.read_table(sample).num_rows == 150
        with pytest.raises(errors.NotFound, match="without training data"):
            c.register_model(model, "iris-bare", owner="t")
            c.get_profile("iris-bare", 1)
        assert [i["name"] for i in v1["signature"]["inputs"]] == list(features.columns)  # type: ignore[attr-defined]
        c.set_alias("iris", "champion", 1)
        assert c.get_version("iris", "champion")["version"] == 1
        assert c.get_model("iris")["aliases"] == {"champion": 1}
        assert "iris" in [m["name"] for m in c.list_models()]
        assert [v["version"] for v in c.list_versions("iris")] == [1, 2]
        dest = c.download_artifact("iris", "champion", tmp_path / "out" / "model.skops")
        assert "sha256:" + hashlib.sha256(dest.read_bytes()).hexdigest() == v1["artifact_digest"]
        result = c.audit_verify()
    assert result["ok"] and result["entries"] >= 6


def _download(c: Client, digest: str) -> list[bytes]:
    response = c._http.get(f"/api/v1/artifacts/{digest}")
    response.raise_for_status()
    return [response.content]


def test_openapi_is_behind_auth_and_every_route_refuses_bad_tokens(shared_plane: ControlPlane) -> None:
    assert httpx.get(shared_plane.url + "/api/v1/openapi.json").status_code == 401
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(shared_plane.url + path).status_code == 404
    spec = httpx.get(shared_plane.url + "/api/v1/openapi.json", headers=shared_plane.auth()).json()
    expired = _issue_expired_token(shared_plane)
    before = audit_count(shared_plane)
    calls = 0
    for path, operations in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in operations:
            for headers in ({}, {"Authorization": "Bearer tl_" + "x" * 43},
                            {"Authorization": f"Bearer {expired}"}, {"Authorization": "Basic abc"}):
                response = httpx.request(method.upper(), shared_plane.url + concrete, headers=headers)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert "error" in response.json()
                calls += 1
    assert calls >= 40
    entries = list(client(shared_plane).audit_entries())
    denied = [e for e in entries if e["action"] == "auth.denied"]
    assert len(denied) >= calls and audit_count(shared_plane) >= before + calls
    reasons = {e["details"]["reason"] for e in denied}
    assert {"missing token", "invalid token", "expired token"} <= reasons
    assert expired not in json.dumps(entries)


class _HourAgo:
    def now(self) -> datetime:
        return datetime.now(timezone.utc) - timedelta(hours=1)


def _issue_expired_token(plane: ControlPlane) -> str:
    """A token issued an hour ago for a minute: expired now."""
    store = SqlMetadataStore(plane.database_url)
    try:
        audit = AuditLog(Ed25519Signer.load_or_create(plane.home / "audit-signing.key"), SystemClock())
        identity = Identity(store, audit, _HourAgo())
        return identity.issue_token(access.system("test"), "admin", "short", timedelta(minutes=1)).secret
    finally:
        store.close()


@pytest.mark.parametrize("name", ["..", "a/b", "%2e%2e", "..%2F..%2Fetc", "/etc/passwd", "m#frag", "UPPER",
                                  "model name", "a%00b"])
def test_bad_model_names_get_4xx_and_write_nothing(shared_plane: ControlPlane, name: str,
                                                   iris_model: tuple[object, object]) -> None:
    before = audit_count(shared_plane)
    with client(shared_plane) as c:
        models_before = c.list_models()
        with pytest.raises(errors.InvalidInput, match="name"):
            c.register_model(iris_model[0], name)
        raw = httpx.get(f"{shared_plane.url}/api/v1/models/{name}", headers=shared_plane.auth())
        assert 400 <= raw.status_code < 500 and "error" in raw.json()
        for quoted in (name.replace("/", "%2F"), name.replace(".", "%2E")):
            raw = httpx.post(f"{shared_plane.url}/api/v1/models/{quoted}/versions", headers=shared_plane.auth(),
                             json={"artifact_digest": "sha256:" + "0" * 64})
            assert 400 <= raw.status_code < 500 and "error" in raw.json()
        assert c.list_models() == models_before
    assert audit_count(shared_plane) == before


def test_bad_registrations_are_refused_with_reasons(shared_plane: ControlPlane, tmp_path: Path,
                                                    iris_model: tuple[object, object]) -> None:
    model, features = iris_model
    text = tmp_path / "model.onnx"
    text.write_text("definitely not a protobuf")
    with client(shared_plane) as c:
        before = audit_count(shared_plane)
        with pytest.raises(errors.InvalidInput, match="ONNX"):
            c.register_model(text, "bad-iris", flavor="onnx")
        with pytest.raises(errors.InvalidInput, match="flavor"):
            c.register_model(model, "bad-iris", flavor="tensorflow")
        with pytest.raises(errors.InvalidInput, match="petal_width"):
            c.register_model(model, "bad-iris", training_data=features.drop(columns=["petal_width"]))  # type: ignore[attr-defined]
        digest = c.upload_artifact(_skops(model, tmp_path))
        for body, field in (({"artifact_digest": digest, "flavor": "keras"}, "flavor"),
                            ({"artifact_digest": "sha256:" + "0" * 64}, "artifact_digest"),
                            ({"artifact_digest": "../../etc/passwd"}, "artifact_digest"),
                            ({"artifact_digest": digest, "metrics": {"auc": "high"}}, "metrics"),
                            ({"artifact_digest": digest, "surprise": 1}, "surprise")):
            response = httpx.post(f"{shared_plane.url}/api/v1/models/bad-iris/versions", json={**body, "owner": "t"},
                                  headers=shared_plane.auth())
            assert response.status_code == 400 and field in response.json()["error"], response.text
        with pytest.raises(errors.NotFound):
            c.get_model("bad-iris")
        assert audit_count(shared_plane) == before


def _skops(model: object, tmp_path: Path) -> Path:
    import skops.io

    path = tmp_path / "m.skops"
    skops.io.dump(model, path)
    return path


def test_upload_digest_mismatch_and_bad_digests(shared_plane: ControlPlane) -> None:
    url = shared_plane.url + "/api/v1/artifacts"
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    response = httpx.post(url, content=b"payload", headers={**shared_plane.auth(), "x-content-sha256": wrong})
    assert response.status_code == 400 and "digest" in response.json()["error"]
    assert httpx.get(f"{url}/{hashlib.sha256(b'payload').hexdigest()}", headers=shared_plane.auth()).status_code == 404
    for bad in ("..%2F..%2Fadmin.token", "abc", "%2e%2e"):
        assert 400 <= httpx.get(f"{url}/{bad}", headers=shared_plane.auth()).status_code < 500


def test_upload_over_limit_is_413_and_keeps_nothing(database_url: str, tmp_path: Path) -> None:
    plane = ControlPlane(home=tmp_path / "home", database_url=database_url,
                         extra_env={"THREADLINE_MAX_UPLOAD_BYTES": "1000",
                                    "THREADLINE_MAX_REQUEST_BYTES": "5000"}).start()
    try:
        url = plane.url + "/api/v1/artifacts"
        assert httpx.post(url, content=b"x" * 1001, headers=plane.auth()).status_code == 413

        def chunked():  # no content-length: the limit must hold while streaming
            for _ in range(20):
                yield b"y" * 100

        response = httpx.post(url, content=chunked(), headers=plane.auth())
        assert response.status_code == 413 and "limit" in response.json()["error"]
        big = httpx.post(plane.url + "/api/v1/models", content=b"{" + b" " * 6000 + b"}",
                         headers={**plane.auth(), "content-type": "application/json"})
        assert big.status_code == 413
        assert list((plane.home / "artifacts" / "sha256").rglob("*")) == []
        assert list((plane.home / "artifacts" / "tmp").iterdir()) == []
        assert httpx.post(url, content=b"z" * 1000, headers=plane.auth()).status_code == 201
    finally:
        plane.stop()


def test_malformed_json_is_400(shared_plane: ControlPlane) -> None:
    response = httpx.post(shared_plane.url + "/api/v1/models", content=b"{not json",
                          headers={**shared_plane.auth(), "content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()
