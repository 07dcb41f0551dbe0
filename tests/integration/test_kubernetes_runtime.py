"""The Kubernetes runtime: server-side apply, observe, rollback, prune and delete on a real cluster.

The cluster tests run only when ``KUBECONFIG`` is set and its API server answers; each works in a
namespace of its own that is deleted afterwards. They need no working serving image: pods of an
image that cannot be pulled never become ready (the failure path), and a deployment scaled to
zero is rolled out at once (the success path). The first section needs no cluster: it checks
how API objects are read back, on objects made by ``render``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from threadline.adapters import runtime_kubernetes
from threadline.domain import errors
from threadline.gitops import documents, model, render, spec

DIGEST_7 = "sha256:" + "7" * 64
DIGEST_8 = "sha256:" + "8" * 64
UNPULLABLE = "registry.invalid/threadline/none:0"  # .invalid never resolves: the pods stay unready

SPEC = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {{name: {name}, environment: test, owner: ml-team}}
spec:
  model: fraud-model
  version: 7
  replicas: {{min: {low}, max: {high}}}
  resources: {{cpu: 50m, memory: 64Mi}}
  health: {{readinessTimeout: 5s}}
"""


def _deployment(name: str = "scorer", low: int = 0, high: int = 1) -> spec.ModelDeployment:
    [deployment] = documents.load_text(SPEC.format(name=name, low=low, high=high), "test.yaml")
    return deployment


def _workload(deployment: spec.ModelDeployment, replicas: int, *, canary: bool = False) -> model.Workload:
    return model.Workload(
        key=deployment.key, stable=model.Revision("fraud-model", 7, DIGEST_7), replicas=replicas,
        serving=deployment.spec.serving, canary=model.Revision("fraud-model", 8, DIGEST_8) if canary else None,
        canary_weight=25 if canary else 0, config_hash=model.config_hash(deployment.spec))


def _rendered_deployment(workload: model.Workload, deployment: spec.ModelDeployment) -> dict[str, Any]:
    manifests = render.render(deployment, workload, image="img", namespace="ns", control_plane_url="http://cp:8700")
    return next(m for m in manifests if m["kind"] == "Deployment")


def _pod(template_hash: str, ip: str, *, ready: bool, restarts: int = 0, terminating: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"pod-{ip}", "annotations": {render.TEMPLATE_HASH: template_hash}}
    if terminating:
        metadata["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": metadata, "status": {
        "phase": "Running", "podIP": ip, "containerStatuses": [{"name": "serve", "restartCount": restarts}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


# -- no cluster needed ---------------------------------------------------------------------------

def test_observe_reads_back_what_render_wrote() -> None:
    deployment = _deployment(low=2, high=2)
    workload = _workload(deployment, 2, canary=True)
    live = _rendered_deployment(workload, deployment)
    current = live["metadata"]["annotations"][render.TEMPLATE_HASH]
    pods = [_pod(current, "10.0.0.2", ready=True, restarts=1), _pod(current, "10.0.0.1", ready=True),
            _pod(current, "10.0.0.3", ready=False, restarts=4), _pod("old-template", "10.0.0.9", ready=True),
            _pod(current, "10.0.0.8", ready=True, terminating=True)]
    observed = runtime_kubernetes.observed_from(live, pods)
    assert observed == model.Observed(
        key=("scorer", "test"), stable=workload.stable, canary=workload.canary, canary_weight=25, replicas=2,
        ready=2, config_hash=workload.config_hash, endpoints=("http://10.0.0.1:8080", "http://10.0.0.2:8080"),
        restarts=5)


def test_observe_reports_declared_replicas_under_an_hpa_and_live_ones_otherwise() -> None:
    scaled = _deployment(low=1, high=5)
    live = _rendered_deployment(_workload(scaled, 1), scaled)
    live["spec"]["replicas"] = 4  # the HPA scaled up: not drift
    assert runtime_kubernetes.observed_from(live, []).replicas == 1  # type: ignore[union-attr]
    fixed = _deployment(low=2, high=2)
    live = _rendered_deployment(_workload(fixed, 2), fixed)
    live["spec"]["replicas"] = 5  # someone ran kubectl scale: drift the planner must see
    assert runtime_kubernetes.observed_from(live, []).replicas == 5  # type: ignore[union-attr]


def test_observe_skips_deployments_without_readable_annotations() -> None:
    deployment = _deployment()
    live = _rendered_deployment(_workload(deployment, 0), deployment)
    del live["metadata"]["annotations"][render.DIGESTS]
    assert runtime_kubernetes.observed_from(live, []) is None
    live = _rendered_deployment(_workload(deployment, 0), deployment)
    live["metadata"]["annotations"][render.STABLE] = "no-version"
    assert runtime_kubernetes.observed_from(live, []) is None


def test_rollout_status_judges_like_kubectl() -> None:
    def deployment(generation: int, observed: int, **status: Any) -> dict[str, Any]:
        return {"metadata": {"generation": generation}, "spec": {"replicas": 2},
                "status": {"observedGeneration": observed, **status}}

    assert runtime_kubernetes.rollout_status(deployment(2, 1, updatedReplicas=2, replicas=2,
                                                        availableReplicas=2)) == (False, None)
    assert runtime_kubernetes.rollout_status(deployment(2, 2, updatedReplicas=1, replicas=3,
                                                        availableReplicas=2)) == (False, None)
    assert runtime_kubernetes.rollout_status(deployment(2, 2, updatedReplicas=2, replicas=3,
                                                        availableReplicas=2)) == (False, None)
    assert runtime_kubernetes.rollout_status(deployment(2, 2, updatedReplicas=2, replicas=2,
                                                        availableReplicas=2)) == (True, None)
    stuck = deployment(2, 2, conditions=[{"type": "Progressing", "status": "False",
                                          "reason": "ProgressDeadlineExceeded", "message": "too slow"}])
    assert runtime_kubernetes.rollout_status(stuck) == (False, "too slow")
    stuck["metadata"]["generation"] = 3  # a new template: the old verdict no longer holds
    assert runtime_kubernetes.rollout_status(stuck) == (False, None)
    zero = {"metadata": {"generation": 1}, "spec": {"replicas": 0}, "status": {"observedGeneration": 1}}
    assert runtime_kubernetes.rollout_status(zero) == (True, None)


def test_http_responses_are_read_up_to_their_content_length() -> None:
    ours, theirs = socket.socketpair()
    body = b"threadline_inference_requests_total 1\n"
    # the far end stays open, like a port-forward stream: reading must stop at Content-Length
    theirs.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % len(body)
                   + body[:10])
    threading.Timer(0.05, lambda: theirs.sendall(body[10:])).start()
    ours.settimeout(5)
    assert runtime_kubernetes.read_http_response(ours) == (200, body)
    theirs.sendall(b"garbage\r\n\r\n")
    with pytest.raises(errors.RuntimeFailure, match="not an HTTP response"):
        runtime_kubernetes.read_http_response(ours)
    ours.close()
    theirs.close()


def test_without_configuration_the_error_says_what_to_set(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Any) -> None:
    pytest.importorskip("kubernetes")
    for variable in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(errors.ConfigurationError, match="set KUBECONFIG"):
        runtime_kubernetes.load_api_client()


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # makes `import kubernetes` fail
    with pytest.raises(errors.MissingExtra, match=r"threadline\[kubernetes\]"):
        runtime_kubernetes.KubernetesRuntime("ns", "img", "http://cp:8700")


# -- on a cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_client() -> Iterator[Any]:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("no Kubernetes cluster to test against: KUBECONFIG is not set")
    kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes package is not installed")
    try:
        client = runtime_kubernetes.load_api_client()
        kubernetes.client.VersionApi(client).get_code(_request_timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means: no cluster here
        pytest.skip(f"no Kubernetes cluster to test against: the API server of KUBECONFIG did not answer ({exc})")
    yield client
    client.close()


@pytest.fixture
def namespace(api_client: Any) -> Iterator[str]:
    import kubernetes

    core = kubernetes.client.CoreV1Api(api_client)
    name = "threadline-test-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_secret(name, {"metadata": {"name": "threadline-serving-token"},
                                         "stringData": {"token": "not-a-real-token"}})
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


class _FastClock:
    """Every reading moves 15 s on (sleeps stay real): a rollout that cannot succeed is given up
    after about five polls instead of the minute and more Kubernetes would allow."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        self.now += 15.0
        return self.now


def _runtime(api_client: Any, namespace: str, *, fast: bool = True) -> runtime_kubernetes.KubernetesRuntime:
    return runtime_kubernetes.KubernetesRuntime(namespace, UNPULLABLE, "http://threadline.example.svc:8700",
                                                api_client=api_client, poll_interval=1.0,
                                                clock=_FastClock() if fast else time.monotonic)


def _objects(api_client: Any, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    import kubernetes

    dynamic = kubernetes.dynamic.DynamicClient(api_client)
    found = {}
    for api_version, kind in render.KINDS:
        try:
            found[kind] = dynamic.get(dynamic.resources.get(api_version=api_version, kind=kind), name=name,
                                      namespace=namespace).to_dict()
        except kubernetes.dynamic.exceptions.NotFoundError:
            pass
    return found


def test_apply_observe_delete(api_client: Any, namespace: str) -> None:
    runtime = _runtime(api_client, namespace)
    deployment = _deployment()
    runtime.declare(deployment)
    workload = _workload(deployment, 0, canary=True)
    runtime.apply(workload)  # zero replicas: rolled out at once
    runtime.apply(workload)  # and again: a no-op
    objects = _objects(api_client, namespace, "scorer-test")
    assert set(objects) == {"ServiceAccount", "NetworkPolicy", "Service", "PodDisruptionBudget", "Deployment"}
    managers = {(f["manager"], f["operation"]) for f in objects["Deployment"]["metadata"]["managedFields"]}
    assert ("threadline", "Apply") in managers
    observed = runtime.observe()
    assert observed == {("scorer", "test"): model.Observed(
        key=("scorer", "test"), stable=workload.stable, canary=workload.canary, canary_weight=25, replicas=0,
        ready=0, config_hash=workload.config_hash)}
    runtime.delete(("scorer", "test"))
    assert runtime.observe() == {}
    assert _objects(api_client, namespace, "scorer-test") == {}
    runtime.delete(("scorer", "test"))  # absent: a no-op


def test_a_rollout_that_never_becomes_ready_fails_and_puts_the_previous_manifests_back(
        api_client: Any, namespace: str) -> None:
    runtime = _runtime(api_client, namespace)
    deployment = _deployment(low=0, high=1)
    runtime.declare(deployment)
    runtime.apply(_workload(deployment, 0))
    before = _objects(api_client, namespace, "scorer-test")["Deployment"]
    newer = model.Revision("fraud-model", 8, DIGEST_8)
    broken = model.Workload(**{**_workload(deployment, 1).__dict__, "stable": newer})
    with pytest.raises(errors.RuntimeFailure, match="did not become ready") as failure:
        runtime.apply(broken)
    assert failure.value.evidence["pods"], failure.value.evidence
    after = _objects(api_client, namespace, "scorer-test")["Deployment"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert after["spec"]["replicas"] == 0
    [observed] = runtime.observe().values()
    assert observed.stable == model.Revision("fraud-model", 7, DIGEST_7)


def test_an_hpa_is_pruned_when_autoscaling_ends(api_client: Any, namespace: str) -> None:
    runtime = _runtime(api_client, namespace)
    scaled = _deployment(low=1, high=3)
    runtime.declare(scaled)
    with pytest.raises(errors.RuntimeFailure):  # the image cannot be pulled; the objects are there all the same
        runtime.apply(_workload(scaled, 1))
    assert "HorizontalPodAutoscaler" in _objects(api_client, namespace, "scorer-test")
    fixed = _deployment(low=0, high=1)
    restarted = _runtime(api_client, namespace, fast=False)  # scaling the unready pod away takes real time
    restarted.declare(fixed)
    restarted.apply(_workload(fixed, 0))
    assert "HorizontalPodAutoscaler" not in _objects(api_client, namespace, "scorer-test")


def test_a_name_held_by_someone_else_is_a_conflict_not_a_takeover(api_client: Any, namespace: str) -> None:
    import kubernetes

    core = kubernetes.client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "scorer-test", "labels": {"team": "x"}}})
    runtime = _runtime(api_client, namespace)
    deployment = _deployment()
    runtime.declare(deployment)
    with pytest.raises(errors.Conflict, match="does not belong"):
        runtime.apply(_workload(deployment, 0))
    account = core.read_namespaced_service_account("scorer-test", namespace)
    assert account.metadata.labels == {"team": "x"}
    runtime.delete(("scorer", "test"))  # never deletes what is not ours
    assert core.read_namespaced_service_account("scorer-test", namespace).metadata.labels == {"team": "x"}


def test_apply_needs_a_declared_spec_and_sample_a_token(api_client: Any, namespace: str) -> None:
    runtime = _runtime(api_client, namespace)
    deployment = _deployment()
    with pytest.raises(errors.ConfigurationError, match="declare"):
        runtime.apply(_workload(deployment, 0))
    with pytest.raises(errors.ConfigurationError, match="metrics_token"):
        runtime.sample(deployment.key)


def test_sample_of_a_deployment_without_ready_pods_is_empty(api_client: Any, namespace: str) -> None:
    runtime = runtime_kubernetes.KubernetesRuntime(namespace, UNPULLABLE, "http://cp:8700", api_client=api_client,
                                                   metrics_token="tl_unused")
    deployment = _deployment()
    runtime.declare(deployment)
    runtime.apply(_workload(deployment, 0))
    assert runtime.sample(deployment.key) == model.ServingSample()
