"""``threadline serve`` against a real control plane, driven by real OIP v2 clients."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from support import ControlPlane, free_port
from threadline import Client
from threadline.serving.predlog import read_log

pytestmark = pytest.mark.integration

X, Y = make_classification(n_samples=400, n_features=6, random_state=1)
FOREST = RandomForestClassifier(n_estimators=15, random_state=0).fit(X, Y)
LINEAR = LogisticRegression(max_iter=500).fit(X, Y)


class Server:
    def __init__(self, plane: ControlPlane, home: Path, *args: str) -> None:
        self.plane, self.home = plane, home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"serve-{self.port}.log"
        env = {**plane.cli_env(), "THREADLINE_HOME": str(home)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "threadline", "serve", "--port", str(self.port), "--log-dir",
             str(home / "predictions"), "--flush-interval", "0.2", *args],
            env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log()}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"serve never became ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        return self.process.returncode

    def infer(self, model: str, rows: np.ndarray, *, version: int | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(rows.shape),
                            "data": rows.ravel().tolist()}]}
        return httpx.post(self.url + path, json=body, headers=self.plane.auth() if headers is None else headers)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    folder = tmp_path_factory.mktemp("serving")
    control = ControlPlane(home=folder / "home", database_url=f"sqlite:///{folder / 'db.sqlite'}").start()
    with Client(control.url, control.token) as client:
        client.register_model(FOREST, "forest", owner="t")
        client.register_model(LINEAR, "forest")  # version 2: a different model, same signature
        client.set_alias("forest", "champion", 1)
    try:
        yield control
    finally:
        control.stop()


@pytest.fixture
def server(plane: ControlPlane, tmp_path: Path) -> Iterator[Server]:
    serving = Server(plane, tmp_path, "-m", "forest@champion", "--escalate-below", "0.9").wait_ready()
    try:
        yield serving
    finally:
        serving.stop()


def test_tritonclient_works_unchanged(server: Server) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    headers = server.plane.auth()
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("forest", headers=headers)
    metadata = client.get_model_metadata("forest", headers=headers)
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 6]}]
    assert {o["name"] for o in metadata["outputs"]} == {"label", "probabilities"}
    batch = X[:5]
    tensor = triton.InferInput("input-0", list(batch.shape), "FP64")
    tensor.set_data_from_numpy(batch)
    result = client.infer("forest", [tensor], headers=headers)
    assert np.array_equal(result.as_numpy("label"), FOREST.predict(batch))
    assert np.array_equal(result.as_numpy("probabilities"), FOREST.predict_proba(batch))
    assert result.get_response()["model_version"] == "1"
    binary = [triton.InferRequestedOutput("probabilities", binary_data=True),
              triton.InferRequestedOutput("label", binary_data=True)]
    raw = client.infer("forest", [tensor], outputs=binary, headers=headers)
    assert np.array_equal(raw.as_numpy("probabilities"), FOREST.predict_proba(batch))
    assert np.array_equal(raw.as_numpy("label"), FOREST.predict(batch))


def test_bad_requests_get_400s_that_name_the_problem(server: Server) -> None:
    url, auth = server.url + "/v2/models/forest/infer", server.plane.auth()
    good = {"name": "input-0", "datatype": "FP64", "shape": [1, 6], "data": [0.1] * 6}
    cases = [
        ({"inputs": [{**good, "name": "x"}]}, "x"),
        ({"inputs": [{**good, "datatype": "FP32"}]}, "FP64"),
        ({"inputs": [{**good, "shape": [1, 5], "data": [0.1] * 5}]}, "shape"),
        ({"inputs": [{**good, "data": [0.1] * 5}]}, "6"),
        ({"inputs": [{**good, "shape": [0, 6], "data": []}]}, "empty"),
        ({"inputs": [{**good, "data": [0.1] * 5 + ["NaN"]}]}, "input-0"),
        ({"inputs": []}, "inputs"),
    ]
    for body, needle in cases:
        response = httpx.post(url, json=body, headers=auth)
        assert response.status_code == 400 and needle in response.json()["error"], (body, response.text)
    malformed = httpx.post(url, content=b"{not json", headers={**auth, "content-type": "application/json"})
    assert malformed.status_code == 400
    huge = httpx.post(url, content=b"[" + b"1," * (5 << 20) + b"1]", headers=auth)
    assert huge.status_code == 413
    assert httpx.post(server.url + "/v2/models/nope/infer", json={"inputs": [good]}, headers=auth).status_code == 404
    assert httpx.get(url, headers=auth).status_code == 405
    assert server.infer("forest", X[:1], version=9).status_code == 404
    assert server.infer("forest", X[:1]).status_code == 200  # still serving


def test_tokens_are_required_on_model_routes(server: Server) -> None:
    assert server.infer("forest", X[:1], headers={}).status_code == 401
    assert server.infer("forest", X[:1], headers={"Authorization": "Bearer tl_" + "x" * 43}).status_code == 401
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/v2/health/live").status_code == 200


def test_predictions_are_logged_and_flushed_on_sigterm(plane: ControlPlane, tmp_path: Path) -> None:
    # A flush interval longer than the test: only the graceful shutdown can write the records.
    server = Server(plane, tmp_path, "-m", "forest@champion", "--escalate-below", "0.9",
                    "--flush-interval", "120").wait_ready()
    ids, escalated = [], []
    for i in range(20):
        response = server.infer("forest", X[i:i + 1], headers={**server.plane.auth(),
                                                                "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
        body = response.json()
        ids += body["parameters"]["prediction_ids"]
        escalated += body["parameters"]["escalated"]
        assert response.headers["traceparent"].startswith("00-" + "ab" * 16)
    multi = server.infer("forest", X[:3]).json()
    ids += multi["parameters"]["prediction_ids"]
    metrics = httpx.get(server.url + "/metrics", headers=server.plane.auth()).text
    assert 'threadline_inference_requests_total{model="forest",status="ok",version="1"} 21.0' in metrics
    assert 'threadline_inference_latency_seconds_count{model="forest",version="1"} 21.0' in metrics
    flagged = sum(escalated) + sum(multi["parameters"]["escalated"])
    assert f'threadline_predictions_escalated_total{{model="forest",version="1"}} {float(flagged)}' in metrics
    assert 'threadline_batch_rows_sum{model="forest",version="1"} 23.0' in metrics
    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its graceful shutdown
    table = read_log(server.home / "predictions").to_pylist()
    assert sorted(r["prediction_id"] for r in table) == sorted(ids)
    first = next(r for r in table if r["prediction_id"] == ids[0])
    assert first["trace_id"] == "ab" * 16 and first["model"] == "forest" and first["version"] == 1
    probability = FOREST.predict_proba(X[:1]).max()
    assert first["confidence"] == pytest.approx(probability) and first["escalated"] == (probability < 0.9)
    assert sum(r["escalated"] for r in table if r["prediction_id"] in ids[:20]) == sum(escalated)


def test_canary_split_is_exact_and_versions_are_addressable(plane: ControlPlane, tmp_path: Path) -> None:
    serving = Server(plane, tmp_path, "-m", "forest@1=90", "-m", "forest@2=10").wait_ready()
    try:
        answered = Counter(serving.infer("forest", X[:1]).json()["model_version"] for _ in range(100))
        assert answered == {"1": 90, "2": 10}
        explicit = serving.infer("forest", X[:4], version=2).json()
        labels = next(o for o in explicit["outputs"] if o["name"] == "label")["data"]
        assert labels == LINEAR.predict(X[:4]).tolist()
        sticky = {serving.infer("forest", X[:1], headers={**plane.auth(), "x-threadline-route-key": "user-7"})
                  .json()["model_version"] for _ in range(10)}
        assert len(sticky) == 1
    finally:
        serving.stop()


def test_rate_limit_answers_429_with_retry_after(plane: ControlPlane, tmp_path: Path) -> None:
    serving = Server(plane, tmp_path, "-m", "forest@1", "--rate-limit", "0.5", "--rate-burst", "2").wait_ready()
    try:
        statuses = [serving.infer("forest", X[:1]) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert int(statuses[2].headers["retry-after"]) >= 1
    finally:
        serving.stop()


def test_corrupted_artifact_refuses_to_load(plane: ControlPlane, tmp_path: Path) -> None:
    Server(plane, tmp_path, "-m", "forest@1").wait_ready().stop()
    cached = next(p for p in (tmp_path / "serving-cache").rglob("*") if p.is_file())
    os.chmod(cached, 0o600)
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    broken = Server(plane, tmp_path, "-m", "forest@1")
    assert broken.process.wait(timeout=90) != 0
    assert "digest mismatch" in broken.log()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress")
                                                                         .ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_token_file_tls_and_two_workers(plane: ControlPlane, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("tl_" + "s" * 43 + "\n")
    tokens.chmod(0o644)
    refused = Server(plane, tmp_path, "-m", "forest@1", "--token-file", str(tokens))
    assert refused.process.wait(timeout=90) != 0 and "chmod 600" in refused.log()
    tokens.chmod(0o600)
    cert, key = _self_signed(tmp_path)
    serving = Server(plane, tmp_path, "-m", "forest@1", "--token-file", str(tokens), "--workers", "2",
                     "--tls-cert", str(cert), "--tls-key", str(key))
    serving.url = serving.url.replace("http://", "https://")
    deadline = time.monotonic() + 120
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(serving.url + "/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 6], "data": X[0].tolist()}]}
        url = serving.url + "/v2/models/forest/infer"
        assert client.post(url, json=body, headers={"Authorization": "Bearer tl_" + "s" * 43}).status_code == 200
        assert client.post(url, json=body, headers=plane.auth()).status_code == 401  # not in the file
    children = subprocess.run(["pgrep", "-P", str(serving.process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 2, serving.log()
    serving.stop()


def test_spans_are_exported_over_otlp(plane: ControlPlane, tmp_path: Path) -> None:
    import http.server
    import threading

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans: list[object] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["content-length"]))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans.extend(s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    try:
        serving = Server(plane, tmp_path, "-m", "forest@1").wait_ready()
    finally:
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    trace_id = "12" * 16
    response = serving.infer("forest", X[:1], headers={**plane.auth(), "traceparent": f"00-{trace_id}-{'34' * 8}-01"})
    assert response.headers["traceparent"].startswith(f"00-{trace_id}-")
    serving.stop()  # shutdown flushes the span processor
    collector.shutdown()
    exported = [s for s in spans if s.trace_id.hex() == trace_id]  # type: ignore[attr-defined]
    assert len(exported) == 1, spans
    span = exported[0]
    assert span.parent_span_id.hex() == "34" * 8  # type: ignore[attr-defined]
    assert response.headers["traceparent"].split("-")[2] == span.span_id.hex()  # type: ignore[attr-defined]
    attributes = {a.key: a.value for a in span.attributes}  # type: ignore[attr-defined]
    assert attributes["threadline.model"].string_value == "forest"


def test_onnx_and_mlflow_folder_flavors_serve(plane: ControlPlane, tmp_path: Path) -> None:
    import skops.io
    import yaml
    from skl2onnx import to_onnx

    onnx_model = to_onnx(LINEAR, X[:1].astype(np.float32), options={"zipmap": False})
    onnx_path = tmp_path / "linear.onnx"
    onnx_path.write_bytes(onnx_model.SerializeToString())
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    skops.io.dump(FOREST, folder / "model.skops")
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": {
        "pickled_model": "model.skops", "serialization_format": "skops", "sklearn_version": "1"}}}))
    with Client(plane.url, plane.token) as client:
        client.register_model(onnx_path, "linear-onnx", owner="t")
        client.register_model(folder, "forest-mlflow", owner="t")
    serving = Server(plane, tmp_path, "-m", "linear-onnx@1", "-m", "forest-mlflow@1").wait_ready()
    try:
        meta = httpx.get(serving.url + "/v2/models/linear-onnx", headers=plane.auth()).json()
        assert meta["platform"] == "onnxruntime_onnx"
        name = meta["inputs"][0]["name"]
        rows = X[:4].astype(np.float32)
        body = {"inputs": [{"name": name, "datatype": "FP32", "shape": [4, 6], "data": rows.ravel().tolist()}]}
        answer = httpx.post(serving.url + "/v2/models/linear-onnx/infer", json=body, headers=plane.auth()).json()
        outputs = {o["name"]: o for o in answer["outputs"]}
        label_name = next(n for n in outputs if "label" in n)
        assert outputs[label_name]["data"] == LINEAR.predict(X[:4]).tolist()
        mlflow_answer = serving.infer("forest-mlflow", X[:4]).json()
        labels = next(o for o in mlflow_answer["outputs"] if o["name"] == "label")["data"]
        assert labels == FOREST.predict(X[:4]).tolist()
    finally:
        serving.stop()


def test_serve_a_deployment_file(plane: ControlPlane, tmp_path: Path) -> None:
    spec = tmp_path / "deployment.yaml"
    spec.write_text(
        "apiVersion: threadline/v1\nkind: ModelDeployment\n"
        "metadata: {name: forest-scorer, environment: production, owner: risk-team}\n"
        "spec:\n  model: forest\n  alias: champion\n"
        "  serving: {maxBatchRows: 8, maxWaitMs: 1}\n"
        "  escalation: {confidenceBelow: 0.99, queue: forest-review}\n")
    serving = Server(plane, tmp_path, "--deployment", str(spec)).wait_ready()
    try:
        answer = serving.infer("forest", X[:2]).json()
        assert answer["model_version"] == "1" and len(answer["parameters"]["escalated"]) == 2
    finally:
        serving.stop()
    assert {r["deployment"] for r in read_log(tmp_path / "predictions").to_pylist()} == {"forest-scorer"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("maxBatchRows", "maxBatchRowz"))
    refused = Server(plane, tmp_path, "--deployment", str(bad))
    assert refused.process.wait(timeout=60) == 1
    assert f"{bad}:7: spec.serving.maxBatchRowz: unknown field" in refused.log()
