"""Fuzz the whole REST API from its own OpenAPI spec (schemathesis) with a valid admin token.

The schema is fetched from the running control plane (it is served behind auth) and every
operation gets bounded, derandomised runs of schema-valid (positive) and schema-breaking
(negative) requests, sent with the admin token:

1. with every parameter generated;
2. for the routes under ``/models/{name}``, against a real registered model (``name`` fixed,
   the version, alias and body generated), so that the fuzzing gets past the 404s;
3. the same with the version (and alias) fixed to the model's version 1 (and its alias) too,
   so that bodies and queries reach the handlers.

Every response must hold to the API's error contract:

* no 5xx (and no hang or dropped connection);
* nothing that leaks a token (the admin's, a seeded user's, or any issued during the run,
  except in the one response that issues it) or a stack trace, in the body or the headers;
* a JSON error body is exactly ``{"error": "<message>"}``.

The run changes state freely (users, tokens, aliases, cards, approvals...) in its own control
plane; the one thing it must not do is revoke its own token, so DELETE /tokens/{id} cases
that could name that token are left out, and the token is checked to still work at the end.

Failures are collected over the whole run rather than stopping at the first, and reported
together, each with the request, the response, the server's traceback for a 5xx and a curl
command that reproduces it.
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
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from support import ControlPlane

pytestmark = pytest.mark.integration

API = "/api/v1"
SEEDED_MODEL = "fuzz-iris"
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Examples per operation and generation mode, for each pass (see the module docstring).
EVERYTHING_GENERATED = {POSITIVE: 20, NEGATIVE: 10}
MODEL_FIXED = {POSITIVE: 25, NEGATIVE: 5}
VERSION_FIXED = {POSITIVE: 15, NEGATIVE: 5}
REQUEST_TIMEOUT = 30.0
FAILURES_PER_OPERATION = 3  # distinct problems kept per operation in the report
STACK_TRACE_MARKERS = ("Traceback", 'File "')
OTP_HEADER = "X-Threadline-OTP"
OTP_FUZZED = {("get", f"{API}/whoami"), ("post", f"{API}/mfa/enroll"), ("get", f"{API}/models")}


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
                f"    request:   {self.request}\n    response:  {self.response}\n    reproduce: {self.curl}")


def _schema_for_fuzzing(raw: dict[str, Any]) -> dict[str, Any]:
    """The served schema, adjusted for the fuzzer.

    * The bearer token is sent by the fuzzer on every request, so the security requirements
      are dropped: schemathesis would otherwise replace the token with generated junk or
      leave it out (the 401/403 paths are the route-walking test's business).
    * The TOTP step-up header is checked the same way by every route: it is declared as an
      optional header on a few operations (OTP_FUZZED) so that its parsing is fuzzed there.
    * A version ``ref`` is "a version number, an alias, or latest", typed as a plain string:
      it is declared as an integer or a string so that version numbers get generated too.
    * The artifact upload reads the raw request stream (FastAPI sees no body) and takes an
      optional ``X-Content-SHA256`` header: both are declared so that they get fuzzed too.
    """
    schema = copy.deepcopy(raw)
    schema.pop("security", None)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            operation.pop("security", None)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "ref":
                    parameter["schema"] = {"anyOf": [{"type": "integer"}, parameter.get("schema", {"type": "string"})]}
            if (method, path) in OTP_FUZZED:
                operation.setdefault("parameters", []).append(
                    {"name": OTP_HEADER, "in": "header", "required": False, "schema": {"type": "string"}})
    upload = schema["paths"].get(f"{API}/artifacts", {}).get("post")
    assert upload is not None, "the artifact upload route is missing from the schema"
    upload.setdefault("requestBody", {"content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary", "maxLength": 4096}}}})
    upload.setdefault("parameters", []).append(
        {"name": "X-Content-SHA256", "in": "header", "required": False, "schema": {"type": "string"}})
    return schema


def _could_be_token_id(value: object, token_id: int) -> bool:
    """Whether the server might parse a path value as ``token_id`` (lax int parsing takes
    " 1", "01", "+1", "1.0", "1_0"...): such a DELETE would revoke the fuzzer's own token."""
    if isinstance(value, bool):
        return False
    text = str(value).strip().replace("_", "")
    try:
        return float(text) == token_id
    except (ValueError, OverflowError):
        return False


def _text(response: requests.Response) -> str:
    return response.content.decode("utf-8", errors="replace")


def _problems(response: requests.Response, secrets: dict[str, str]) -> list[str]:
    problems = []
    body = _text(response)
    if response.status_code >= 500:
        problems.append(f"server error {response.status_code}")
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret, whose in secrets.items():
        if secret in body or secret in headers:
            problems.append(f"{whose} is in the response")
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
    body = "" if type(case.body).__name__ == "NotSet" else f" body={case.body!r:.600}"
    query = f" query={case.query!r}" if case.query else ""
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    extra = f" headers={headers!r}" if headers else ""
    return f"{case.method.upper()} {case.formatted_path}{query}{extra}{body}"


class Fuzzer:
    def __init__(self, plane: ControlPlane, protected_token_ids: set[int], other_secrets: dict[str, str]) -> None:
        self.plane = plane
        self.secret = plane.token
        # Token secrets no response may show; the one that issues a token shows it once.
        self.secrets = {plane.token: "the admin token", **other_secrets}
        self.headers = plane.auth()
        self.protected_token_ids = protected_token_ids
        self.session = requests.Session()
        self.failures: dict[str, list[Failure]] = {}
        self.statuses: dict[str, Counter[int]] = {}
        self.calls = 0
        self.not_negatable: list[str] = []

    def run(self, operation: Any, mode: GenerationMode, examples: int,
            path_parameters: dict[str, Any] | None = None) -> None:
        label = operation.label
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  phases=[Phase.generate], print_blob=False,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def fuzz(case: Any) -> None:
            if "token_id" in (case.path_parameters or {}) and operation.method.lower() == "delete":
                token_id = case.path_parameters["token_id"]
                assume(not any(_could_be_token_id(token_id, own) for own in self.protected_token_ids))
            self.calls += 1
            try:
                response = self._call(case)
            except requests.RequestException as exc:
                self._record(label, mode, case, [f"no response ({type(exc).__name__}: {exc})"],
                             "(none)" + self._server_state())
                return
            self.statuses.setdefault(label, Counter())[response.status_code] += 1
            problems = _problems(response, self.secrets)
            self._learn_secret(operation, response)
            if problems:
                shown = _text(response)[:800]
                for secret, whose in self.secrets.items():
                    shown = shown.replace(secret, f"<{whose}>")
                if response.status_code >= 500:
                    shown += self._server_traceback()
                self._record(label, mode, case, problems, f"{response.status_code} {shown}")

        try:
            fuzz()
        except Unsatisfiable as exc:
            if mode == NEGATIVE:  # nothing in this operation can be made invalid
                self.not_negatable.append(label)
                return
            self._could_not_fuzz(label, mode, exc)
        except Exception as exc:  # a generation problem must not hide behind a green run
            self._could_not_fuzz(label, mode, exc)

    def _could_not_fuzz(self, label: str, mode: GenerationMode, exc: Exception) -> None:
        self.failures.setdefault(label, []).append(Failure(
                label, mode.value, [f"could not fuzz ({type(exc).__name__}: {exc})"[:800]], "-", "-", "-"))

    def _learn_secret(self, operation: Any, response: requests.Response) -> None:
        if (operation.method.lower(), operation.path) == ("post", f"{API}/tokens") and response.status_code == 201:
            issued = response.json()
            self.secrets[issued["token"]] = f"the secret of token {issued['id']}"

    def _call(self, case: Any) -> requests.Response:
        try:
            return case.call(base_url=self.plane.url, headers=self.headers, session=self.session,
                             timeout=REQUEST_TIMEOUT)
        except requests.ConnectionError:
            # The server closes a kept-alive connection after an unhandled error (already
            # reported with that 5xx); a retry on a fresh connection tells that from a crash.
            self.session.close()
            self.session = requests.Session()
            return case.call(base_url=self.plane.url, headers=self.headers, session=self.session,
                             timeout=REQUEST_TIMEOUT)

    def _server_state(self) -> str:
        process = self.plane.process
        if process is not None and process.poll() is not None:
            return f"; the server exited with {process.returncode}:\n{self.plane.log()}"
        return ""

    def _server_traceback(self) -> str:
        """Threadline's frames and the exception of the last traceback in the server log."""
        time.sleep(0.2)  # the server logs the traceback after sending the response
        path = self.plane.home.parent / f"server-{self.plane.port}.log"
        log = path.read_text(errors="replace") if path.exists() else ""
        start = log.rfind("Traceback (most recent call last)")
        if start < 0:
            return ""
        lines = [line for line in log[start:].splitlines() if line.strip()]
        end = next((i for i in range(1, len(lines)) if not lines[i].startswith(" ")), len(lines) - 1)
        shown = [f"{line.strip()} / {lines[i + 1].strip()}" for i, line in enumerate(lines[:end])
                 if line.lstrip().startswith("File") and "/threadline/" in line and i + 1 < end]
        shown.append(lines[end].strip())
        return "\n    server:    " + "\n               ".join(shown[-8:])

    def _record(self, label: str, mode: GenerationMode, case: Any, problems: list[str], response: str) -> None:
        found = self.failures.setdefault(label, [])
        kinds = {tuple(p.split(" (")[0] for p in f.problems) for f in found}
        if len(found) >= FAILURES_PER_OPERATION or tuple(p.split(" (")[0] for p in problems) in kinds:
            return
        try:
            curl = case.as_curl_command(headers=self.headers, base_url=self.plane.url)
        except Exception as exc:  # only for the report
            curl = f"(no curl: {exc})"
        curl = curl.replace("'Authorization: [Filtered]'", "\"Authorization: Bearer $THREADLINE_TOKEN\"")
        found.append(Failure(label, mode.value, problems, _describe_request(case), response,
                             curl.replace(self.secret, "$THREADLINE_TOKEN")))

    def report(self) -> str:
        lines = [f.render() for failures in self.failures.values() for f in failures]
        counts = "\n".join(f"    {label}: {dict(sorted(c.items()))}" for label, c in self.statuses.items())
        return (f"{len(lines)} problem(s) in {self.calls} fuzzed requests:\n" + "\n".join(lines)
                + "\nstatuses per operation:\n" + counts
                + f"\nno negative cases (nothing to make invalid): {', '.join(self.not_negatable)}")


def _seed(plane: ControlPlane, iris_model: tuple[object, object]) -> dict[str, str]:
    """A registered model with a profile and an alias, and a second user with a token;
    returns that token's secret (which no response may show either)."""
    from threadline import Client

    auth = plane.auth()
    created = httpx.post(plane.url + f"{API}/users", headers=auth, timeout=30,
                         json={"name": "fuzz-user", "roles": ["viewer"]})
    assert created.status_code == 201, created.text
    issued = httpx.post(plane.url + f"{API}/tokens", headers=auth, timeout=30,
                        json={"name": "fuzz-token", "user": "fuzz-user"})
    assert issued.status_code == 201, issued.text
    model, features = iris_model
    with Client(plane.url, plane.token) as client:
        client.register_model(model, SEEDED_MODEL, training_data=features, metrics={"accuracy": 0.9},
                              owner="fuzz", lineage={"code_repo": "https://git.example/fuzz",
                                                     "code_commit": "abc123"})
        client.set_alias(SEEDED_MODEL, "champion", 1)
    return {issued.json()["token"]: "fuzz-user's token"}


def _fixed(operation: Any, values: dict[str, Any]) -> dict[str, Any]:
    names = {parameter.name for parameter in operation.path_parameters}
    return {name: value for name, value in values.items() if name in names}


def test_fuzz_rest_api(control_plane: ControlPlane, iris_model: tuple[object, object]) -> None:
    plane = control_plane
    started = time.monotonic()
    raw = httpx.get(plane.url + f"{API}/openapi.json", headers=plane.auth(), timeout=30)
    assert raw.status_code == 200, raw.text
    tokens = httpx.get(plane.url + f"{API}/tokens", headers=plane.auth(), timeout=30).json()["items"]
    # The fuzzer's own token (the bootstrap admin's) must survive the DELETE /tokens/{id} cases.
    own_tokens = {t["id"] for t in tokens if t["user"] == "admin" and t["revoked_at"] is None}
    assert own_tokens, tokens

    schema = schemathesis.openapi.from_dict(_schema_for_fuzzing(raw.json()))
    operations = [result.ok() for result in schema.get_all_operations()]  # .ok() raises on a broken one
    assert len(operations) >= 30, [op.label for op in operations]
    fuzzer = Fuzzer(plane, own_tokens, _seed(plane, iris_model))
    for operation in operations:
        for mode, examples in EVERYTHING_GENERATED.items():
            fuzzer.run(operation, mode, examples)
    under_a_model = [op for op in operations if op.path.startswith(f"{API}/models/{{name}}")]
    assert under_a_model
    for operation in under_a_model:
        for mode, examples in MODEL_FIXED.items():
            fuzzer.run(operation, mode, examples, _fixed(operation, {"name": SEEDED_MODEL}))
        if _fixed(operation, {"version": 1, "ref": "1", "alias": "champion"}):
            for mode, examples in VERSION_FIXED.items():
                fuzzer.run(operation, mode, examples, _fixed(operation, {
                    "name": SEEDED_MODEL, "version": 1, "ref": "1", "alias": "champion"}))

    # The run stayed meaningful: the admin token still works and the server is alive.
    alive = httpx.get(plane.url + f"{API}/whoami", headers=plane.auth(), timeout=30)
    assert alive.status_code == 200, f"the admin token stopped working during fuzzing: {alive.text}"
    elapsed = time.monotonic() - started
    assert not fuzzer.failures, fuzzer.report() + f"\n(fuzzing took {elapsed:.0f}s)"
    assert fuzzer.calls > 500, fuzzer.report()
