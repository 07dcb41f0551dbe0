"""The Python SDK: the same verbs as the CLI, over the control plane's HTTP API.

``Client()`` with no arguments finds the control plane from ``THREADLINE_URL`` and
``THREADLINE_TOKEN``, falling back to the local embedded default and its admin token file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping

import httpx
import orjson

from threadline import files, tls
from threadline.domain import errors, names
from threadline.settings import ClientSettings

_CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (bytes sent, total bytes)

_STATUS_ERRORS: dict[int, type[errors.ThreadlineError]] = {
    400: errors.InvalidInput, 401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
    409: errors.Conflict, 413: errors.PayloadTooLarge, 500: errors.IntegrityError,
    503: errors.ConfigurationError,
}


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 120.0) -> None:
        settings = ClientSettings()
        self.url = (url or settings.url or f"http://127.0.0.1:{settings.port}").rstrip("/")
        token = token or settings.token or _local_admin_token(settings.home)
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  verify=tls.client_context())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- models and versions ------------------------------------------------------------

    def create_model(self, name: str, owner: str, risk: str = "minimal", description: str = "") -> dict[str, Any]:
        return self._call("POST", "/api/v1/models",
                          json={"name": name, "owner": owner, "risk_tier": risk, "description": description})

    def get_model(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/models/{_seg(name)}")

    def list_models(self, query: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
        return list(self._pages("/api/v1/models", {"query": query, "owner": owner}))

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/api/v1/models/{_seg(name)}/versions", {}))

    def get_version(self, name: str, ref: str | int = "latest") -> dict[str, Any]:
        """``ref`` is a version number, an alias or ``"latest"``."""
        return self._call("GET", f"/api/v1/models/{_seg(name)}/versions/{_seg(str(ref))}")

    def get_profile(self, name: str, ref: str | int = "latest") -> dict[str, Any]:
        """The reference profile computed from the version's training data."""
        return self._call("GET", f"/api/v1/models/{_seg(name)}/versions/{_seg(str(ref))}/profile")

    def register_model(self, model_or_path: Any, name: str, flavor: str | None = None,
                       training_data: Any = None, card: Mapping[str, Any] | None = None,
                       risk: str | None = None, lineage: Mapping[str, Any] | None = None,
                       metrics: Mapping[str, float] | None = None, *, owner: str | None = None,
                       description: str = "", target: str | list[str] | None = None,
                       trusted: bool = False, progress: Progress | None = None,
                       otp: str | None = None) -> dict[str, Any]:
        """Upload a model (a fitted estimator, an ONNX model, or a path) and register a version.

        With ``training_data`` (DataFrame, Arrow table, Parquet or CSV path) the reference
        profile and a row sample are computed here and sent along; ``target`` names label
        columns to leave out. The model is created on first registration, owned by ``owner``
        (default "default") with risk tier ``risk`` (default minimal). ``trusted`` (accepting a
        pickle) needs an approver and a fresh TOTP code in ``otp``.
        """
        from threadline.artifacts import pack

        names.model_name(name)  # fail before uploading anything
        body: dict[str, Any] = {"description": description, "trusted": trusted,
                                "metrics": dict(metrics or {}), "card": dict(card or {}),
                                "risk_tier": risk, "owner": owner or "default"}
        lineage_body = dict(lineage or {})
        with tempfile.TemporaryDirectory(prefix="threadline-") as scratch:
            workdir = Path(scratch)
            path, detected = pack.pack_model(model_or_path, workdir, flavor)
            body["flavor"] = detected.value
            if training_data is not None:
                body.update(self._profile(training_data, target, workdir, lineage_body))
            body["artifact_digest"] = self.upload_artifact(path, progress=progress)
        body["lineage"] = lineage_body
        return self._call("POST", f"/api/v1/models/{_seg(name)}/versions", json=body, headers=_otp(otp))

    def _profile(self, training_data: Any, target: str | list[str] | None, workdir: Path,
                 lineage: dict[str, Any]) -> dict[str, Any]:
        import pyarrow.parquet as pq

        from threadline.registry import profiling

        table = profiling.load_table(training_data)
        exclude = [target] if isinstance(target, str) else list(target or [])
        profile, sample = profiling.compute_profile(table, exclude=exclude)
        sample_path = workdir / "sample.parquet"
        pq.write_table(sample, sample_path)
        if "training_data" not in lineage:
            uri = (Path(training_data).resolve().as_uri() if isinstance(training_data, (str, Path))
                   else f"inline:{type(training_data).__name__}")
            lineage["training_data"] = [{"uri": uri, "digest": profiling.data_digest(training_data)}]
        return {"profile": profile, "sample_digest": self.upload_artifact(sample_path)}

    def transition_version(self, name: str, version: int, event: str) -> dict[str, Any]:
        """Move a version along its lifecycle: ``validate``, ``deprecate`` or ``archive``."""
        return self._call("POST", f"/api/v1/models/{_seg(name)}/versions/{version}/transitions",
                          json={"event": event})

    # -- aliases ------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, otp: str | None = None) -> dict[str, Any]:
        """Point an alias at a version; an alias the policy protects needs a fresh TOTP code."""
        return self._call("PUT", f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}", json={"version": version},
                          headers=_otp(otp))

    def delete_alias(self, name: str, alias: str, *, otp: str | None = None) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}", headers=_otp(otp))

    def aliases(self, name: str) -> dict[str, int]:
        return self._call("GET", f"/api/v1/models/{_seg(name)}/aliases")

    # -- artifacts ----------------------------------------------------------------------

    def upload_artifact(self, path: str | Path, *, progress: Progress | None = None) -> str:
        """Stream a file to the artifact store; returns ``sha256:<hex>``."""
        path = Path(path)
        digest, size = _sha256_file(path)

        def chunks() -> Iterator[bytes]:
            sent = 0
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    sent += len(chunk)
                    if progress:
                        progress(sent, size)
                    yield chunk

        headers = {"content-length": str(size), "x-content-sha256": digest,
                   "content-type": "application/octet-stream"}
        result = self._call("POST", "/api/v1/artifacts", content=chunks(), headers=headers)
        return str(result["digest"])

    def download_artifact(self, name: str, ref: str | int, dest: str | Path) -> Path:
        """Download a version's artifact to ``dest``, verified against its digest."""
        version = self.get_version(name, ref)
        return self.download_digest(str(version["artifact_digest"]), dest)

    def download_digest(self, digest: str, dest: str | Path) -> Path:
        """Download the stored artifact ``digest`` to ``dest``, verified on the way."""
        expected = digest.removeprefix("sha256:")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".download-", delete=False) as handle:
            try:
                actual = self._stream_to(f"/api/v1/artifacts/{expected}", handle)
                if actual != expected:
                    raise errors.DigestMismatch(expected, actual)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                os.unlink(handle.name)
                raise
        os.replace(handle.name, dest)
        return dest

    def _stream_to(self, path: str, handle: BinaryIO) -> str:
        hasher = hashlib.sha256()
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                for chunk in response.iter_bytes(_CHUNK):
                    hasher.update(chunk)
                    handle.write(chunk)
        except httpx.TransportError as exc:
            raise errors.IntegrityError(f"download from {self.url} broke off: {exc}") from exc
        return hasher.hexdigest()

    # -- audit --------------------------------------------------------------------------

    def audit_verify(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/audit/verify")

    def audit_entries(self, after: int = 0, *, actor: str | None = None, action: str | None = None,
                      object: str | None = None) -> Iterator[dict[str, Any]]:
        """Entries in order; ``action`` ending in ``.`` matches a family, ``object`` a subtree."""
        filters = {k: v for k, v in {"actor": actor, "action": action, "object": object}.items() if v}
        while True:
            page = self._call("GET", "/api/v1/audit/entries", params={"after": after, "limit": 1000, **filters})
            yield from page["items"]
            if page["next_after"] is None:
                return
            after = page["next_after"]

    def audit_checkpoint(self) -> dict[str, Any]:
        return self._call("POST", "/api/v1/audit/checkpoint")

    # -- identity -----------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/whoami")

    def create_user(self, name: str, roles: list[str], teams: list[str] | None = None) -> dict[str, Any]:
        return self._call("POST", "/api/v1/users", json={"name": name, "roles": roles, "teams": teams or []})

    def list_users(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/users")["items"])

    def update_user(self, name: str, *, roles: list[str] | None = None, teams: list[str] | None = None,
                    disabled: bool | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"roles": roles, "teams": teams, "disabled": disabled}.items() if v is not None}
        return self._call("PATCH", f"/api/v1/users/{_seg(name)}", json=body)

    def create_token(self, name: str, *, user: str | None = None, expires_in_days: int | None = 90) -> dict[str, Any]:
        """A new token; ``result["token"]`` is the secret, shown only in this response."""
        return self._call("POST", "/api/v1/tokens", json={"name": name, "user": user,
                                                          "expires_in_days": expires_in_days})

    def list_tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/tokens", params={"user": user} if user else {})["items"])

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/tokens/{token_id}")

    def mfa_enroll(self, *, otp: str | None = None) -> dict[str, Any]:
        """Start TOTP enrolment: ``secret`` and ``uri`` for an authenticator app."""
        return self._call("POST", "/api/v1/mfa/enroll", headers=_otp(otp))

    def mfa_confirm(self, code: str) -> dict[str, Any]:
        return self._call("POST", "/api/v1/mfa/confirm", json={"code": code})

    # -- governance ---------------------------------------------------------------------

    def get_policy(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/policy")

    def set_policy(self, document: str, *, source: str = "policy.yaml", otp: str | None = None) -> dict[str, Any]:
        return self._call("PUT", "/api/v1/policy", json={"document": document, "source": source}, headers=_otp(otp))

    def policy_history(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/policy/history")["items"])

    def get_card(self, name: str, ref: str | int = "latest", *, format: str = "json") -> Any:
        """The version's card: a dict for ``json``, text for ``markdown`` or ``html``."""
        return self._call("GET", f"{_version_path(name, ref)}/card", params={"format": format})

    def edit_card(self, name: str, version: int, card: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("PUT", f"{_version_path(name, version)}/card", json=dict(card))

    def check(self, name: str, ref: str | int, environment: str) -> dict[str, Any]:
        """Every policy gate for this version in ``environment``: outcome and reason."""
        return self._call("GET", f"{_version_path(name, ref)}/check", params={"environment": environment})

    def approvals(self, name: str, ref: str | int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{_version_path(name, ref)}/approvals")["items"])

    def request_approval(self, name: str, version: int, environment: str, comment: str = "") -> dict[str, Any]:
        return self._call("POST", f"{_version_path(name, version)}/approval-requests",
                          json={"environment": environment, "comment": comment})

    def decide(self, name: str, version: int, environment: str, decision: str, comment: str = "", *,
               otp: str | None = None) -> dict[str, Any]:
        """``decision`` is approve, reject or withdraw; the result is the gate report after it."""
        return self._call("POST", f"{_version_path(name, version)}/approvals", headers=_otp(otp),
                          json={"environment": environment, "decision": decision, "comment": comment})

    def compliance(self, name: str, ref: str | int, *, deployment: str | None = None, format: str = "json") -> Any:
        """The compliance report; ``deployment`` is a ModelDeployment YAML text."""
        return self._call("POST", f"{_version_path(name, ref)}/compliance",
                          json={"deployment": deployment, "format": format})

    def readiness(self, deployment: str, *, format: str = "json") -> Any:
        return self._call("POST", "/api/v1/readiness", json={"deployment": deployment, "format": format})

    def attest(self, deployment: str, item: str, comment: str) -> dict[str, Any]:
        return self._call("POST", "/api/v1/readiness/attestations",
                          json={"deployment": deployment, "item": item, "comment": comment})

    # -- gitops -------------------------------------------------------------------------

    def sync(self, *, dry_run: bool = False) -> dict[str, Any]:
        """Run a GitOps pass on the control plane's agent now; ``dry_run`` only plans."""
        return self._call("POST", "/api/v1/sync", json={"dry_run": dry_run})

    def deployments(self, environment: str | None = None) -> list[dict[str, Any]]:
        params = {"environment": environment} if environment else {}
        return list(self._call("GET", "/api/v1/deployments", params=params)["items"])

    def deployment(self, name: str, environment: str = "production") -> dict[str, Any]:
        return self._call("GET", f"/api/v1/deployments/{_seg(environment)}/{_seg(name)}")

    # -- monitoring ---------------------------------------------------------------------

    def drift(self, deployment: str, *, window: str = "1h", start: str | None = None, end: str | None = None,
              environment: str | None = None) -> dict[str, Any]:
        """Per-feature drift of a deployment's logged traffic (the last ``window``, or from/to)."""
        params = {k: v for k, v in {"window": window, "from": start, "to": end,
                                    "environment": environment}.items() if v is not None}
        return self._call("GET", f"/api/v1/drift/{_seg(deployment)}", params=params)

    def drift_report(self, deployment: str, *, window: str = "1h", start: str | None = None,
                     end: str | None = None, environment: str | None = None) -> str:
        """The drift as a self-contained HTML page with per-feature histograms."""
        params = {k: v for k, v in {"window": window, "from": start, "to": end, "environment": environment,
                                    "format": "html"}.items() if v is not None}
        return str(self._call("GET", f"/api/v1/drift/{_seg(deployment)}", params=params))

    def windows(self, deployment: str, *, width: str = "1h", window: str = "24h", start: str | None = None,
                end: str | None = None) -> dict[str, Any]:
        """Service levels and quality (from labels) per window of ``width``."""
        params = {k: v for k, v in {"width": width, "window": window, "from": start,
                                    "to": end}.items() if v is not None}
        return self._call("GET", f"/api/v1/monitoring/{_seg(deployment)}/windows", params=params)

    def events(self, deployment: str, *, environment: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts fired and resolved, and retraining calls, newest first."""
        params = {k: v for k, v in {"environment": environment, "limit": limit}.items() if v is not None}
        return self._call("GET", f"/api/v1/monitoring/{_seg(deployment)}/events", params=params)["items"]

    def feedback(self, deployment: str, labels: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
        """Attach ground-truth labels (prediction id -> label); unknown ids and bad labels come back."""
        pairs = labels.items() if isinstance(labels, Mapping) else labels
        body = {"labels": [{"prediction_id": pid, "label": label} for pid, label in pairs]}
        return self._call("POST", f"/api/v1/deployments/{_seg(deployment)}/feedback", json=body)

    # -- capacity -----------------------------------------------------------------------

    def recommendation(self, deployment: str, *, environment: str = "production",
                       window: str = "7d") -> dict[str, Any]:
        """Right-sizing from measured utilization: requests, replica bounds, GPU advice, evidence."""
        return self._call("GET", f"/api/v1/capacity/{_seg(environment)}/{_seg(deployment)}/recommendation",
                          params={"window": window})

    def utilization(self, deployment: str, *, environment: str = "production",
                    window: str = "1h") -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v1/capacity/{_seg(environment)}/{_seg(deployment)}/utilization",
                          params={"window": window})["items"]

    def cost(self, *, by: str = "deployment", since: str = "7d", spot: bool = False) -> dict[str, Any]:
        return self._call("GET", "/api/v1/capacity/cost", params={"by": by, "since": since, "spot": spot})

    def cost_csv(self, *, by: str = "deployment", since: str = "7d", spot: bool = False) -> str:
        return str(self._call("GET", "/api/v1/capacity/cost", params={"by": by, "since": since, "spot": spot,
                                                                      "format": "csv"}))

    # -- bundles and review -------------------------------------------------------------

    def bundle(self, bundle_id: str) -> dict[str, Any]:
        """A context bundle with its signature and review task (an audited read)."""
        return self._call("GET", f"/api/v1/bundles/{_seg(bundle_id)}")

    def bundle_key(self) -> dict[str, Any]:
        """This installation's bundle signing key (key_id, public_key PEM)."""
        return self._call("GET", "/api/v1/keys/bundles")

    def trusted_keys(self) -> dict[str, str]:
        """Every key whose bundles this installation accepts, its own included: key id -> PEM."""
        own = self.bundle_key()
        keys = {item["key_id"]: item["public_pem"] for item in self._call("GET", "/api/v1/keys/trusted")["items"]}
        keys[own["key_id"]] = own["public_key"]
        return keys

    def trust_key(self, name: str, public_key: str) -> dict[str, Any]:
        return self._call("POST", "/api/v1/keys/trusted", json={"name": name, "public_key": public_key})

    def import_bundle(self, path: str | Path) -> dict[str, Any]:
        """Upload an exported bundle file; the control plane verifies it before keeping it."""
        with open(path, "rb") as handle:
            return self._call("POST", "/api/v1/bundles/import", content=handle,
                              headers={"Content-Type": "application/x-tar"})

    def review_tasks(self, *, queue: str | None = None, status: str | None = None,
                     limit: int = 100) -> dict[str, Any]:
        params = {k: v for k, v in {"queue": queue, "status": status, "limit": limit}.items() if v is not None}
        return self._call("GET", "/api/v1/review", params=params)

    def claim(self, bundle_id: str, *, take_over: bool = False) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/review/{_seg(bundle_id)}/claim", json={"take_over": take_over})

    def resolve(self, bundle_id: str, decision: str, *, label: Any = None, comment: str = "") -> dict[str, Any]:
        """``accept`` the model's answer or ``override`` it with ``label``; the label feeds accuracy."""
        return self._call("POST", f"/api/v1/review/{_seg(bundle_id)}/resolve",
                          json={"decision": decision, "label": label, "comment": comment})

    # -- plumbing -----------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            query = {k: v for k, v in {**params, "limit": 200, "cursor": cursor}.items() if v is not None}
            page = self._call("GET", path, params=query)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.ThreadlineError(
                f"cannot reach the control plane at {self.url} ({type(exc).__name__}); "
                "is `threadline up` running, and is THREADLINE_URL right?") from exc
        if response.status_code >= 400:
            _raise_for(response)
        if not response.headers.get("content-type", "").startswith("application/json"):
            return response.text  # a rendered report or card
        return orjson.loads(response.content)


def _raise_for(response: httpx.Response) -> None:
    try:
        message = str(response.json().get("error", response.text))
    except ValueError:
        message = response.text[:500] or response.reason_phrase
    raise _STATUS_ERRORS.get(response.status_code, errors.ThreadlineError)(message)


def _otp(code: str | None) -> dict[str, str]:
    return {"X-Threadline-OTP": code} if code else {}


def _version_path(name: str, ref: str | int) -> str:
    return f"/api/v1/models/{_seg(name)}/versions/{_seg(str(ref))}"


def _seg(value: str) -> str:
    """Quote one path segment so a name can never change the route it is sent to."""
    from urllib.parse import quote

    return quote(value, safe="")


def _sha256_file(path: Path) -> tuple[str, int]:
    if not path.is_file():
        raise errors.InvalidInput(f"{path} is not a file")
    digest, size = files.sha256_file(path)
    return "sha256:" + digest, size


def _local_admin_token(home: Path) -> str | None:
    path = home.expanduser() / "admin.token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
