"""Fuzz the whole REST API from its own OpenAPI spec (schemathesis) with a valid admin token.

The schema is fetched from the running control plane (it is served behind auth), every
operation gets a bounded, derandomised run of schema-valid (positive) and schema-breaking
(negative) requests, first with generated path parameters and then, for the routes under
``/models/{name}``, against a real registered model so the fuzzing reaches past the 404s.

Every response must hold to the API's error contract:

* no 5xx (and no hang or dropped connection);
* nothing that leaks the admin token or a stack trace, in the body or the headers;
* a JSON error body is exactly ``{"error": "<message>"}``.

Failures are collected over the whole run (not stopped at the first) and reported together,
each with the request, the response and a curl command to reproduce it.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, assume, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from support import ControlPlane  # noqa: E402

pytestmark = pytest.mark.integration

API = "/api/v1"
SEEDED_MODEL = "fuzz-iris"
# Per operation and generation mode; ~38 operations x (15 + 8), plus the seeded pass.
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 8}
SEEDED_EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 5}
REQUEST_TIMEOUT = 30.0
# Keep at most this many distinct failures per operation in the report.
FAILURES_PER_OPERATION = 3
STACK_TRACE_MARKERS = ("Traceback", 'File "')


@dataclass
class Failure:
    operation: str
    mode: str
    problems: list[str]
    request: str
    response: str
    curl: str

    def render(self) -> str:
        return (f"--- {self.operation} [{self.mode}]: {'; '.join(self.problems)}\n"
                f"    request:  {self.request}\n    response: {self.response}\n    reproduce: {self.curl}")


def _schema_for_fuzzing(raw: dict[str, Any]) -> dict[str, Any]:
    """The served schema, with what FastAPI cannot see documented for the fuzzer.

    The artifact upload reads the raw request stream (no declared body), and takes an
    optional ``X-Content-SHA256`` header; declare both so that they get fuzzed too.
    """
    schema = copy.deepcopy(raw)
    upload = schema["paths"].get(f"{API}/artifacts", {}).get("post")
    assert upload is not None, "the artifact upload route is missing from the schema"
    upload.setdefault("requestBody", {"content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary", "maxLength": 4096}}}})
    upload.setdefault("parameters", []).append(
        {"name": "X-Content-SHA256", "in": "header", "required": False, "schema": {"type": "string"}})
    return schema


def _could_be_token_id(value: object, token_id: int) -> bool:
    """Whether a path value might be parsed by the server as ``token_id`` (lax int parsing
    accepts " 1", "01", "+1", "1.0", "1_0"...): such cases would revoke the fuzzer's token."""
    if isinstance(value, bool):
        return False
    text = str(value).strip().replace("_", "")
    try:
        return float(text) == token_id
    except (ValueError, OverflowError):
        return False


def _text(response: requests.Response) -> str:
    return response.content.decode("utf-8", errors="replace")


def _problems(response: requests.Response, secret: str) -> list[str]:
    problems = []
    body = _text(response)
    if response.status_code >= 500:
        problems.append(f"server error {response.status_code}")
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    if secret in body or secret in headers:
        problems.append("the admin token is in the response")
    for marker in STACK_TRACE_MARKERS:
        if marker in body or marker in headers:
            problems.append(f"stack trace in the response ({marker!r})")
            break
    if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
        try:
            data = json.loads(body)
        except ValueError:
            problems.append("error body is not valid JSON")
        else:
            if not (isinstance(data, dict) and set(data) == {"error"} and isinstance(data["error"], str)):
                problems.append('JSON error body is not {"error": "<message>"}')
    return problems


def _describe_request(case: Any) -> str:
    body = "" if case.body is None or type(case.body).__name__ == "NotSet" else f" body={case.body!r:.600}"
    query = f" query={case.query!r}" if case.query else ""
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    extra = f" headers={headers!r}" if headers else ""
    return f"{case.method.upper()} {case.formatted_path}{query}{extra}{body}"


class Fuzzer:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.secret = plane.token
        self.headers = plane.auth()
        self.session = requests.Session()
        self.failures: dict[str, list[Failure]] = {}
        self.calls = 0
        self.protected_token_ids: set[int] = set()
        self.statuses: dict[str, Counter[int]] = {}

    def run(self, operation: Any, mode: GenerationMode, examples: int,
            path_parameters: dict[str, Any] | None = None) -> None:
        label = operation.label
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], print_blob=False,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def fuzz(case: Any) -> None:
            if operation.method.lower() == "delete" and "token_id" in (case.path_parameters or {}):
                assume(not any(_could_be_token_id(case.path_parameters["token_id"], t)
                               for t in self.protected_token_ids))
            self.calls += 1
            try:
                response = case.call(base_url=self.plane.url, headers=self.headers, session=self.session,
                                     timeout=REQUEST_TIMEOUT)
            except requests.RequestException as exc:
                self._record(label, mode, case, [f"no response: {type(exc).__name__}: {exc}"],
                             "(none)" + self._server_state())
                return
            self.statuses.setdefault(label, Counter())[response.status_code] += 1
            problems = _problems(response, self.secret)
            if problems:
                shown = _text(response)[:800].replace(self.secret, "<ADMIN TOKEN>")
                if response.status_code >= 500:
                    shown += self._server_traceback()
                self._record(label, mode, case, problems, f"{response.status_code} {shown}")

        try:
            fuzz()
        except Exception as exc:  # a generation problem must not hide behind a green run
            if "Unsatisfiable" in type(exc).__name__ and mode == GenerationMode.NEGATIVE:
                return  # nothing in this operation can be made invalid (no parameters, no body)
            self.failures.setdefault(label, []).append(Failure(
                label, mode.value, [f"could not fuzz: {type(exc).__name__}: {exc}"[:800]], "-", "-", "-"))

    def _server_state(self) -> str:
        process = self.plane.process
        if process is not None and process.poll() is not None:
            return f"; the server exited with {process.returncode}:\n{self.plane.log()}"
        return ""

    def _server_traceback(self) -> str:
        """The last traceback in the server log: what a 5xx was, for the report."""
        log = self.plane.log()
        start = log.rfind("Traceback")
        return "" if start < 0 else "\n    server log: " + log[start:][-1500:].replace("\n", "\n      ")

    def _record(self, label: str, mode: GenerationMode, case: Any, problems: list[str], response: str) -> None:
        found = self.failures.setdefault(label, [])
        kinds = {tuple(p.split(" (")[0] for p in f.problems) for f in found}
        if len(found) >= FAILURES_PER_OPERATION or tuple(p.split(" (")[0] for p in problems) in kinds:
            return
        try:
            curl = case.as_curl_command(headers={"Authorization": "Bearer $THREADLINE_TOKEN"},
                                        base_url=self.plane.url)
        except Exception as exc:  # pragma: no cover - only for the report
            curl = f"(no curl: {exc})"
        found.append(Failure(label, mode.value, problems, _describe_request(case), response,
                             curl.replace(self.secret, "<ADMIN TOKEN>")))

    def report(self) -> str:
        lines = [f.render() for failures in self.failures.values() for f in failures]
        lines.append("statuses per operation: " + "; ".join(
            f"{label} {dict(sorted(counts.items()))}" for label, counts in self.statuses.items()))
        return f"{len(lines)} problem(s) in {self.calls} fuzzed requests:\n" + "\n".join(lines)


def _seed_model(plane: ControlPlane, iris_model: tuple[object, object]) -> None:
    from threadline import Client

    model, features = iris_model
    with Client(plane.url, plane.token) as client:
        client.register_model(model, SEEDED_MODEL, training_data=features, metrics={"accuracy": 0.9},
                              owner="fuzz", lineage={"code_repo": "https://git.example/fuzz",
                                                     "code_commit": "abc123"})
        client.set_alias(SEEDED_MODEL, "champion", 1)


def _seeded_path_parameters(operation: Any) -> dict[str, Any]:
    names = {p.name for p in operation.path_parameters}
    fixed: dict[str, Any] = {"name": SEEDED_MODEL, "version": 1, "ref": "1"}
    return {k: v for k, v in fixed.items() if k in names}


def test_fuzz_rest_api(control_plane: ControlPlane, iris_model: tuple[object, object]) -> None:
    plane = control_plane
    started = time.monotonic()
    raw = httpx.get(plane.url + f"{API}/openapi.json", headers=plane.auth(), timeout=30)
    assert raw.status_code == 200, raw.text
    whoami = httpx.get(plane.url + f"{API}/tokens", headers=plane.auth(), timeout=30).json()
    own_tokens = {t["id"] for t in whoami["items"] if t["user"] == "admin" and t["revoked_at"] is None}
    assert own_tokens, whoami

    schema = schemathesis.openapi.from_dict(_schema_for_fuzzing(raw.json()))
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())  # raises on an operation schemathesis cannot load
    assert len(operations) >= 30, [op.label for op in operations]

    _seed_model(plane, iris_model)

    fuzzer = Fuzzer(plane)
    # The fuzzer's own token (the bootstrap admin token) must not be revoked mid-run.
    fuzzer.protected_token_ids = own_tokens
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            fuzzer.run(operation, mode, examples)
    for operation in operations:
        if "{name}" in operation.path and operation.path.startswith(f"{API}/models/"):
            for mode, examples in SEEDED_EXAMPLES.items():
                fuzzer.run(operation, mode, examples, _seeded_path_parameters(operation))

    # The run stayed meaningful: the admin token still works and the server is alive.
    alive = httpx.get(plane.url + f"{API}/whoami", headers=plane.auth(), timeout=30)
    assert alive.status_code == 200, f"the admin token stopped working during fuzzing: {alive.text}"
    elapsed = time.monotonic() - started
    print(fuzzer.report() + f"\n(run took {elapsed:.0f}s)")
    assert not fuzzer.failures, fuzzer.report() + f"\n(run took {elapsed:.0f}s)"
    assert fuzzer.calls > 300, f"only {fuzzer.calls} requests were fuzzed"
