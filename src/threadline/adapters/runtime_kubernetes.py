"""The Kubernetes runtime: deployments run as the objects ``gitops.render`` produces, applied
with server-side apply (field manager ``threadline``) through the official client.

The cluster is the only state. ``observe`` reads every Deployment labelled
``app.kubernetes.io/managed-by=threadline`` in the namespace and rebuilds what runs from its
``threadline.dev/*`` annotations, so an agent that restarts finds everything again. Pods are
counted as ready only when they carry the Deployment's current template hash: during a
rolling update the old pods are ready too, but they serve the old revision.

``apply`` needs the ModelDeployment besides the Workload (resources, probes, node selector),
so the agent ``declare``s every deployment it has loaded first. A change rolls out with
``maxUnavailable: 0``: new pods must be ready before an old one goes, so a revision that never
becomes ready takes no capacity away. If the rollout fails, the manifests this runtime last
applied successfully for the key are applied again and RuntimeFailure carries what the new
pods showed (waiting reasons, exit codes, a log tail). An agent that restarted knows no
previous manifests; the old pods keep serving all the same, and the agent's rollback applies
the last healthy workload.

Objects are only ever changed or deleted when their labels say they belong to this deployment:
a name taken by something else is a Conflict, never a takeover.

``sample`` reads ``/metrics`` of every ready pod. The API server proxy cannot be used for
that: it drops the ``Authorization`` header after authenticating the caller, and the serving
``/metrics`` needs a Threadline token. So each pod is reached through a port-forward stream of
the API server (works in and out of the cluster), which needs ``metrics_token``; without one,
``sample`` raises ConfigurationError instead of inventing numbers.

RBAC the agent needs in ``namespace``: get, list, create, patch, delete on serviceaccounts,
services, deployments (apps), networkpolicies (networking.k8s.io), poddisruptionbudgets
(policy) and horizontalpodautoscalers (autoscaling); get and list on pods; get on pods/log;
create on pods/portforward. The Secret named by ``token_secret`` must exist with key ``token``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from threadline.adapters import pod_usage
from threadline.adapters.serving_metrics import ServingTotals, replica_counters
from threadline.domain import errors
from threadline.gitops import model, render, spec

log = logging.getLogger("threadline.runtime.kubernetes")

FIELD_MANAGER = "threadline"
_DEPLOYMENT = ("apps/v1", "Deployment")
_POD = ("v1", "Pod")
_POD_METRICS = ("metrics.k8s.io/v1beta1", "PodMetrics")


class KubernetesRuntime:
    """Runs each deployment as rendered Kubernetes objects in one namespace."""

    name = "kubernetes"

    def __init__(self, namespace: str, image: str, control_plane_url: str, *,
                 token_secret: str = "threadline-serving-token", metrics_token: str | None = None,
                 context: str | None = None, api_client: Any = None, request_timeout: float = 30.0,
                 poll_interval: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``api_client`` (a ``kubernetes.client.ApiClient``) defaults to one loaded from
        KUBECONFIG (or ~/.kube/config; ``context`` picks a context) or, inside a pod, from the
        in-cluster service account."""
        self._k8s: Any = errors.require_module("kubernetes", extra="kubernetes", feature="the Kubernetes runtime")
        self.namespace, self.image, self.control_plane_url = namespace, image, control_plane_url
        self._token_secret, self._metrics_token = token_secret, metrics_token
        self._timeout, self._poll, self._sleep, self._clock = request_timeout, poll_interval, sleep, clock
        self._api = api_client if api_client is not None else load_api_client(context)
        with self._translated("discovering the Kubernetes API"):
            self._dynamic = self._k8s.dynamic.DynamicClient(self._api)
        self._core = self._k8s.client.CoreV1Api(self._api)
        self._specs: dict[model.Key, spec.ModelDeployment] = {}
        self._applied: dict[model.Key, list[dict[str, Any]]] = {}  # last manifests that became ready
        self._cpu: dict[model.Key, pod_usage.PodUsage] = {}  # CPU seconds integrated from the metrics API

    def declare(self, deployment: spec.ModelDeployment) -> None:
        """Record the spec ``apply`` renders a workload of this deployment with (latest wins)."""
        self._specs[deployment.key] = deployment

    def start(self) -> None:
        """Nothing to supervise: Kubernetes restarts and reschedules pods itself."""

    def stop_all(self) -> None:
        """Delete every deployment this runtime manages in the namespace (only when asked to
        stop the workloads; a plain agent stop leaves them running)."""
        for key in self.observe():
            self.delete(key)

    def close(self) -> None:
        self._api.close()

    # -- the Runtime protocol ---------------------------------------------------------------

    def observe(self) -> dict[model.Key, model.Observed]:
        selector = f"{render.MANAGED_BY}={render.MANAGER}"
        deployments = self._list(_DEPLOYMENT, selector)
        pods: dict[str, list[dict[str, Any]]] = {}
        for pod in self._list(_POD, selector):
            instance = _labels(pod).get("app.kubernetes.io/instance", "")
            pods.setdefault(instance, []).append(pod)
        result: dict[model.Key, model.Observed] = {}
        for deployment in deployments:
            instance = _labels(deployment).get("app.kubernetes.io/instance", "")
            observed = observed_from(deployment, pods.get(instance, []))
            if observed is None:
                log.warning("Deployment %s/%s is labelled as ours but its threadline.dev annotations are "
                            "missing or unreadable: ignored", self.namespace, deployment["metadata"]["name"])
            else:
                result[observed.key] = observed
        return result

    def apply(self, workload: model.Workload) -> None:
        deployment = self._specs.get(workload.key)
        if deployment is None:
            raise errors.ConfigurationError(
                f"no ModelDeployment declared for {model.key_text(workload.key)}: the agent must call "
                "runtime.declare(deployment) before apply")
        manifests = render.render(deployment, workload, image=self.image, namespace=self.namespace,
                                  control_plane_url=self.control_plane_url, token_secret=self._token_secret)
        previous = self._applied.get(workload.key)
        self._apply_all(workload.key, manifests)
        failure = self._wait_rolled_out(workload.key, deployment.spec.health.readiness_timeout)
        if failure is None:
            self._applied[workload.key] = manifests
            return
        if previous is not None and previous != manifests:
            log.warning("rollout of %s failed: applying its previous manifests again", model.key_text(workload.key))
            self._apply_all(workload.key, previous)
        raise errors.RuntimeFailure(
            f"{model.key_text(workload.key)}: the new pods did not become ready ({failure.pop('reason')})",
            failure)

    def delete(self, key: model.Key) -> None:
        name = render.resource_name(key)
        for kind in reversed(render.KINDS):
            self._delete_if_ours(kind, name, key)
        self._applied.pop(key, None)

    def readings(self, key: model.Key) -> list[model.ReplicaReading]:
        """Each ready pod's CPU and memory from the metrics API (metrics-server) and its serving
        counters from /metrics. GPU figures are not read on Kubernetes (None: "no GPU data")."""
        if not self._metrics_token:
            raise errors.ConfigurationError("reading the serving pods' /metrics needs a Threadline token the pods "
                                            "accept: give KubernetesRuntime(metrics_token=...)")
        selector = f"app.kubernetes.io/instance={render.resource_name(key)},{render.MANAGED_BY}={render.MANAGER}"
        try:
            usage = {m["metadata"]["name"]: pod_usage.pod_usage(m) for m in self._list(_POD_METRICS, selector)}
        except errors.ConfigurationError as exc:
            raise errors.ConfigurationError(f"the metrics API is not available ({exc}): install metrics-server "
                                            "to measure utilization on Kubernetes") from None
        now, found = self._clock(), []
        integrals = self._cpu.setdefault(key, pod_usage.PodUsage())
        for pod in self._list(_POD, selector):
            name = pod["metadata"]["name"]
            if not _pod_ready(pod) or name not in usage:
                continue
            try:
                counters = replica_counters(self._scrape(name))
            except errors.ConfigurationError:
                raise
            except (errors.ThreadlineError, OSError) as exc:
                log.warning("could not read /metrics of pod %s/%s: %s", self.namespace, name, exc)
                continue
            rate, memory = usage[name]
            found.append(model.ReplicaReading(
                replica=name, cpu_seconds=integrals.update(name, now, rate), rss_bytes=memory,
                requests=counters.requests, errors=counters.errors, latency_seconds=counters.latency_seconds,
                latency_buckets=tuple(sorted(counters.buckets.items())), queue_depth=counters.queue_depth,
                batch_rows=counters.batch_rows, batches=counters.batches))
        integrals.forget_others({r.replica for r in found})
        return found

    def scale(self, key: model.Key, replicas: int) -> None:
        raise errors.ConfigurationError("on Kubernetes the rendered HorizontalPodAutoscaler scales deployments")

    def sample(self, key: model.Key) -> model.ServingSample:
        """Cumulative request counters and latency per revision, summed over the ready pods.

        A pod that cannot be read is left out, as in the local runtime (its counters are gone
        with it once it is replaced, and the analysis treats a counter that went down as a
        restart). A refusal by the API (RBAC) is an error, never an empty sample.
        """
        if not self._metrics_token:
            raise errors.ConfigurationError(
                "canary analysis and health checks on Kubernetes read each serving pod's /metrics, which "
                "needs a Threadline token the pods accept: give KubernetesRuntime(metrics_token=...)")
        selector = f"app.kubernetes.io/instance={render.resource_name(key)},{render.MANAGED_BY}={render.MANAGER}"
        totals = ServingTotals()
        for pod in self._list(_POD, selector):
            if not _pod_ready(pod):
                continue
            name = pod["metadata"]["name"]
            try:
                text = self._scrape(name)
            except errors.ConfigurationError:
                raise
            except (errors.ThreadlineError, OSError) as exc:
                log.warning("could not read /metrics of pod %s/%s: %s", self.namespace, name, exc)
                continue
            totals.add(text)
        return totals.sample()

    # -- applying ------------------------------------------------------------------------------

    def _apply_all(self, key: model.Key, manifests: Sequence[dict[str, Any]]) -> None:
        """Server-side apply every manifest in order, then delete the kinds no longer rendered
        (an HPA once autoscaling is off)."""
        name = render.resource_name(key)
        for manifest in manifests:  # all checked before anything is changed
            existing = self._get((manifest["apiVersion"], manifest["kind"]), name)
            if existing is not None and not _belongs(existing, key):
                raise errors.Conflict(
                    f"{manifest['kind']} {self.namespace}/{name} exists and does not belong to "
                    f"{model.key_text(key)} (labels {_labels(existing)}): rename or remove it")
        for manifest in manifests:
            kind = (manifest["apiVersion"], manifest["kind"])
            with self._translated(f"applying {manifest['kind']} {self.namespace}/{name}"):
                self._dynamic.server_side_apply(self._resource(kind), body=manifest, name=name,
                                                namespace=self.namespace, field_manager=FIELD_MANAGER,
                                                force_conflicts=True, _request_timeout=self._timeout)
        rendered = {(m["apiVersion"], m["kind"]) for m in manifests}
        for kind in render.KINDS:
            if kind not in rendered:
                self._delete_if_ours(kind, name, key)

    def _wait_rolled_out(self, key: model.Key, readiness_timeout: float) -> dict[str, Any] | None:
        """None once every replica runs the new template (as ``kubectl rollout status`` judges
        it), else the evidence of the failure. Kubernetes reports ProgressDeadlineExceeded when
        no pod became ready for ``readiness_timeout + 60`` s; the hard limit allows that per pod."""
        name = render.resource_name(key)
        started = self._clock()
        while True:
            current = self._get(_DEPLOYMENT, name)
            if current is None:
                return {"reason": "the Deployment disappeared during the rollout"}
            done, stuck = rollout_status(current)
            if done:
                return None
            desired = int(current.get("spec", {}).get("replicas", 1) or 0)
            if stuck is None and self._clock() - started > (readiness_timeout + 60) * max(1, desired):
                stuck = f"not rolled out after {self._clock() - started:.0f} s"
            if stuck is not None:
                return {"reason": stuck, **self._evidence(current)}
            self._sleep(self._poll)

    def _evidence(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """What the new pods show: phase, waiting reasons, exit codes, and one log tail."""
        template_hash = _annotations(deployment).get(render.TEMPLATE_HASH)
        selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        pods = [p for p in self._list(_POD, selector) if _annotations(p).get(render.TEMPLATE_HASH) == template_hash]
        evidence: dict[str, Any] = {"conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")}
            for c in deployment.get("status", {}).get("conditions", [])]}
        evidence["pods"] = [_pod_summary(p) for p in pods]
        broken = next((p for p in pods if not _pod_ready(p)), None)
        if broken is not None:
            with contextlib.suppress(errors.ThreadlineError), self._translated("reading a pod log"):
                evidence["log_tail"] = self._core.read_namespaced_pod_log(
                    broken["metadata"]["name"], self.namespace, container="serve", tail_lines=20,
                    limit_bytes=4096, _request_timeout=self._timeout)
        return evidence

    # -- reading metrics --------------------------------------------------------------------------

    def _scrape(self, pod: str) -> str:
        """GET /metrics on the pod's port 8080 through a port-forward stream of the API server."""
        with self._translated(f"port-forwarding to pod {self.namespace}/{pod}"):
            forward = self._k8s.stream.portforward(self._core.connect_get_namespaced_pod_portforward, pod,
                                                   self.namespace, ports=str(render.PORT))
        try:
            connection = forward.socket(render.PORT)
            connection.settimeout(self._timeout)
            connection.sendall((f"GET /metrics HTTP/1.1\r\nHost: {pod}\r\nAuthorization: Bearer "
                                f"{self._metrics_token}\r\nConnection: close\r\n\r\n").encode())
            status, body = read_http_response(connection)
        finally:
            forward.close()
        if status in (401, 403):
            raise errors.ConfigurationError(f"pod {self.namespace}/{pod} refused the metrics token ({status}): "
                                            "give KubernetesRuntime a token the control plane accepts")
        if status != 200:
            raise errors.RuntimeFailure(f"pod {self.namespace}/{pod} answered /metrics with {status}")
        return body.decode("utf-8", "replace")

    # -- the Kubernetes API -----------------------------------------------------------------------

    def _resource(self, kind: tuple[str, str]) -> Any:
        with self._translated(f"finding the API of {kind[1]}"):
            try:
                return self._dynamic.resources.get(api_version=kind[0], kind=kind[1])
            except self._k8s.dynamic.exceptions.ResourceNotFoundError:
                raise errors.ConfigurationError(
                    f"the cluster does not serve {kind[1]} in {kind[0]}: the Kubernetes runtime needs "
                    "Kubernetes 1.25 or newer") from None

    def _get(self, kind: tuple[str, str], name: str) -> dict[str, Any] | None:
        with self._translated(f"reading {kind[1]} {self.namespace}/{name}"):
            try:
                found = self._dynamic.get(self._resource(kind), name=name, namespace=self.namespace,
                                          _request_timeout=self._timeout)
            except self._k8s.dynamic.exceptions.NotFoundError:
                return None
        return dict(found.to_dict())

    def _list(self, kind: tuple[str, str], selector: str) -> list[dict[str, Any]]:
        with self._translated(f"listing {kind[1]}s in {self.namespace}"):
            found = self._dynamic.get(self._resource(kind), namespace=self.namespace, label_selector=selector,
                                      _request_timeout=self._timeout)
        return list(found.to_dict().get("items") or [])

    def _delete_if_ours(self, kind: tuple[str, str], name: str, key: model.Key) -> None:
        existing = self._get(kind, name)
        if existing is None or not _belongs(existing, key):
            return
        with (self._translated(f"deleting {kind[1]} {self.namespace}/{name}"),
              contextlib.suppress(self._k8s.dynamic.exceptions.NotFoundError)):
            self._dynamic.delete(self._resource(kind), name=name, namespace=self.namespace,
                                 propagation_policy="Background", _request_timeout=self._timeout)

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Kubernetes client and network errors -> the Threadline error tree, with the API's message."""
        api_error = self._k8s.client.exceptions.ApiException
        try:
            yield
        except api_error as exc:
            raise _api_error(what, exc) from None
        except (OSError, ValueError, ImportError) as exc:
            raise errors.RuntimeFailure(f"{what}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # urllib3 and websocket errors share no base class worth importing
            if isinstance(exc, errors.ThreadlineError) or type(exc).__module__.split(".")[0] not in (
                    "urllib3", "websocket", "kubernetes"):
                raise
            raise errors.RuntimeFailure(f"{what}: {type(exc).__name__}: {exc}") from exc


def load_api_client(context: str | None = None) -> Any:
    """An ApiClient from KUBECONFIG or ~/.kube/config, else from the in-cluster service account."""
    k8s: Any = errors.require_module("kubernetes", extra="kubernetes", feature="the Kubernetes runtime")
    try:
        if os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists():
            # persist_config=False: never write refreshed credentials back into the user's file
            return k8s.config.new_client_from_config(context=context, persist_config=False)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = k8s.client.Configuration()
            k8s.config.load_incluster_config(client_configuration=configuration)
            return k8s.client.ApiClient(configuration)
    except k8s.config.ConfigException as exc:
        raise errors.ConfigurationError(f"cannot load the Kubernetes configuration: {exc}") from None
    raise errors.ConfigurationError("no Kubernetes configuration: set KUBECONFIG (or create ~/.kube/config), "
                                    "or run the agent inside a cluster")


# -- pure helpers over API objects (dicts as the API returns them) ---------------------------------

def observed_from(deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> model.Observed | None:
    """What a rendered Deployment runs, from its annotations and its pods; None if not readable."""
    labels, notes = _labels(deployment), _annotations(deployment)
    try:
        key = (labels[render.DEPLOYMENT_LABEL], labels[render.ENVIRONMENT_LABEL])
        digests = json.loads(notes[render.DIGESTS])
        stable = _revision(notes[render.STABLE], digests)
        canary = _revision(notes[render.CANARY], digests) if render.CANARY in notes else None
        weight = int(notes.get(render.CANARY_WEIGHT, "0"))
        declared = int(notes[render.REPLICAS])
    except (KeyError, ValueError, TypeError):
        return None
    # An HPA moves spec.replicas: then report what was declared. Otherwise report the live
    # count, so a hand-made `kubectl scale` shows up as drift.
    autoscaled = notes.get(render.AUTOSCALED) == "true"
    replicas = declared if autoscaled else int(deployment.get("spec", {}).get("replicas", 1) or 0)
    current = [p for p in pods if _annotations(p).get(render.TEMPLATE_HASH) == notes.get(render.TEMPLATE_HASH)
               and not p.get("metadata", {}).get("deletionTimestamp")]
    ready = [p for p in current if _pod_ready(p)]
    endpoints = tuple(sorted(f"http://{p['status']['podIP']}:{render.PORT}" for p in ready
                             if p.get("status", {}).get("podIP")))
    restarts = sum(int(c.get("restartCount", 0)) for p in current
                   for c in p.get("status", {}).get("containerStatuses") or [])
    return model.Observed(key=key, stable=stable, canary=canary, canary_weight=weight, replicas=replicas,
                          ready=len(ready), config_hash=notes.get(render.CONFIG_HASH, ""), endpoints=endpoints,
                          restarts=restarts)


def rollout_status(deployment: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(rolled out, why it is stuck) as ``kubectl rollout status`` judges a Deployment."""
    status = deployment.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(deployment.get("metadata", {}).get("generation") or 0):
        return False, None  # the conditions still describe the previous template
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, condition.get("message") or "progress deadline exceeded"
    desired = int(deployment.get("spec", {}).get("replicas", 1) or 0)
    updated = int(status.get("updatedReplicas") or 0)
    done = (updated >= desired and int(status.get("replicas") or 0) <= updated
            and int(status.get("availableReplicas") or 0) >= desired)
    return done, None


def read_http_response(connection: Any, limit: int = 16 << 20) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response read from a socket; stops at Content-Length,
    since a port-forward stream may not close when the pod closes its side."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise errors.RuntimeFailure("the connection closed before the HTTP headers ended")
        data += chunk
        if len(data) > limit:
            raise errors.RuntimeFailure("HTTP response headers too large")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise errors.RuntimeFailure(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise errors.RuntimeFailure("chunked HTTP responses are not supported here")
    length = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else None
    if length is not None and length > limit:
        raise errors.RuntimeFailure(f"HTTP response body of {length} bytes is over the limit of {limit}")
    while length is None or len(body) < length:
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            if length is None:
                break
            raise errors.RuntimeFailure("timed out reading the HTTP response body") from None
        if not chunk:
            break
        body += chunk
        if len(body) > limit:
            raise errors.RuntimeFailure(f"HTTP response body over the limit of {limit} bytes")
    return int(parts[1]), body if length is None else body[:length]


def _api_error(what: str, exc: Any) -> errors.ThreadlineError:
    status = getattr(exc, "status", None)
    message = str(getattr(exc, "reason", "") or "")
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(exc.body).get("message") or message
    text = f"{what}: the Kubernetes API answered {status}: {message}"
    if status in (401, 403):
        return errors.ConfigurationError(f"{text} (check the agent's credentials and RBAC)")
    if status in (400, 422):
        return errors.InvalidInput(text)
    if status == 409:
        return errors.Conflict(text)
    return errors.RuntimeFailure(text, {"status": status})


def _revision(ref: str, digests: Mapping[str, str]) -> model.Revision:
    name, _, version = ref.rpartition("@")
    if not name:
        raise ValueError(f"not a revision ref: {ref!r}")
    return model.Revision(model=name, version=int(version), digest=str(digests[ref]))


def _belongs(obj: Mapping[str, Any], key: model.Key) -> bool:
    labels = _labels(obj)
    return (labels.get(render.MANAGED_BY) == render.MANAGER and labels.get(render.DEPLOYMENT_LABEL) == key[0]
            and labels.get(render.ENVIRONMENT_LABEL) == key[1])


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return (not (pod.get("metadata") or {}).get("deletionTimestamp") and status.get("phase") == "Running"
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []))


def _pod_summary(pod: Mapping[str, Any]) -> dict[str, Any]:
    status = pod.get("status") or {}
    containers = []
    for c in status.get("containerStatuses") or []:
        state, last = c.get("state") or {}, (c.get("lastState") or {}).get("terminated") or {}
        waiting = state.get("waiting") or {}
        containers.append({"name": c.get("name"), "ready": c.get("ready"), "restarts": c.get("restartCount", 0),
                           "waiting": waiting.get("reason"), "message": waiting.get("message"),
                           "last_exit_code": last.get("exitCode"), "last_reason": last.get("reason")})
    return {"pod": pod["metadata"]["name"], "phase": status.get("phase"),
            "unschedulable": next((c.get("message") for c in status.get("conditions") or []
                                   if c.get("type") == "PodScheduled" and c.get("status") == "False"), None),
            "containers": containers}
