"""Kubernetes manifests of a deployment: valid against the official schemas, locked down, deterministic.

No cluster runs here, so every rendered object is checked with kubernetes-validate (strict: an
unknown field is an error) against an older supported Kubernetes and the newest schemas the
package ships. JSON Schema does not check what the API server checks by code (name and label
formats), so those are asserted here too.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from threadline.gitops import documents, model, render, spec

VERSIONS = ["1.31.0", kubernetes_validate.utils.latest_version()]
DIGEST_7 = "sha256:" + "7" * 64
DIGEST_8 = "sha256:" + "8" * 64
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")

PLAIN = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: fraud-scorer, environment: production, owner: risk-team, labels: {team: risk}}
spec:
  model: fraud-model
  version: 7
  replicas: {min: 1, max: 4}
  resources: {cpu: "1", memory: 2Gi}
  health: {failureThreshold: 4, readinessTimeout: 90s}
  escalation: {confidenceBelow: 0.6, queue: fraud-review}
  serving: {maxBatchRows: 32, maxWaitMs: 2.5, rateLimit: 50, rateBurst: 20}
"""

GPU = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: vision, environment: staging, owner: cv-team}
spec:
  model: resnet
  alias: champion
  replicas: {min: 2, max: 6}
  resources: {cpu: 4, memory: 16Gi, gpu: 2}
  nodeSelector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-40GB, pool: gpu}
  tolerations:
    - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
    - {key: dedicated, operator: Equal, value: ml, effect: NoExecute, tolerationSeconds: 300}
"""

CANARY = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: fraud-scorer, environment: production, owner: risk-team}
spec:
  model: fraud-model
  version: 8
  replicas: {min: 3, max: 3}
  rollout: {strategy: canary, steps: [{weight: 10, pause: 60s}, {weight: 50, pause: 60s}]}
"""

FIXED = """\
apiVersion: threadline/v1
kind: ModelDeployment
metadata: {name: batch-ranker, environment: dev, owner: search-team}
spec:
  model: ranker
  version: 3
  replicas: {min: 2, max: 2}
  resources: {cpu: 500m, memory: 512Mi}
"""


def _deployment(text: str) -> spec.ModelDeployment:
    [deployment] = documents.load_text(text, "test.yaml")
    return deployment


def _workload(deployment: spec.ModelDeployment, *, version: int = 7, digest: str = DIGEST_7,
              canary: model.Revision | None = None, weight: int = 0, replicas: int | None = None) -> model.Workload:
    wanted = deployment.spec
    return model.Workload(
        key=deployment.key, stable=model.Revision(wanted.model, version, digest),
        replicas=wanted.replicas.min if replicas is None else replicas, serving=wanted.serving,
        escalate_below=None if wanted.escalation is None else wanted.escalation.confidence_below,
        canary=canary, canary_weight=weight, config_hash=model.config_hash(wanted))


def _render(deployment: spec.ModelDeployment, workload: model.Workload) -> list[dict[str, Any]]:
    return render.render(deployment, workload, image="ghcr.io/threadline/threadline:0.1.0", namespace="models",
                         control_plane_url="http://threadline.threadline.svc:8700")


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [m["kind"] for m in manifests]
    assert len(kinds) == len(set(kinds)), kinds
    return {m["kind"]: m for m in manifests}


def _container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    [container] = _by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _plain() -> tuple[spec.ModelDeployment, model.Workload]:
    deployment = _deployment(PLAIN)
    return deployment, _workload(deployment)


def _cases() -> dict[str, list[dict[str, Any]]]:
    plain = _deployment(PLAIN)
    gpu = _deployment(GPU)
    canary = _deployment(CANARY)
    fixed = _deployment(FIXED)
    scale_to_zero = _deployment(PLAIN.replace("{min: 1, max: 4}", "{min: 0, max: 1}"))
    return {
        "plain": _render(plain, _workload(plain)),
        "gpu": _render(gpu, _workload(gpu, version=12)),
        "canary": _render(canary, _workload(canary, canary=model.Revision("fraud-model", 8, DIGEST_8), weight=10)),
        "canary-full": _render(canary, _workload(canary, canary=model.Revision("fraud-model", 8, DIGEST_8),
                                                 weight=100)),
        "fixed": _render(fixed, _workload(fixed, version=3)),
        "zero": _render(scale_to_zero, _workload(scale_to_zero, replicas=0)),
    }


CASES = _cases()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(case: str, version: str) -> None:
    for manifest in CASES[case]:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{case}: {manifest['kind']} is not valid for Kubernetes {version}: "
                        f"{str(exc).splitlines()[0]}")


def test_the_validator_is_strict() -> None:
    """A passing validation means something only if an unknown field fails."""
    deployment = _by_kind(CASES["plain"])["Deployment"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_names_and_labels_are_what_the_api_server_accepts(case: str) -> None:
    for manifest in CASES[case]:
        name = manifest["metadata"]["name"]
        assert DNS_1035.match(name) and len(name) <= 63, name
        labels = dict(manifest["metadata"]["labels"])
        if manifest["kind"] == "Deployment":
            labels.update(manifest["spec"]["template"]["metadata"]["labels"])
        for key, value in labels.items():
            assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)


def test_kinds_in_apply_order() -> None:
    assert [m["kind"] for m in CASES["plain"]] == [
        "ServiceAccount", "NetworkPolicy", "Service", "PodDisruptionBudget", "Deployment", "HorizontalPodAutoscaler"]
    assert [(m["apiVersion"], m["kind"]) for m in CASES["plain"]] == list(render.KINDS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pods_are_locked_down(case: str) -> None:
    manifests = _by_kind(CASES[case])
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["serviceAccountName"] == manifests["ServiceAccount"]["metadata"]["name"]
    assert manifests["ServiceAccount"]["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    # the root filesystem is read-only: the home and /tmp are emptyDir volumes
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/var/lib/threadline", "/tmp"}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    policy = manifests["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == manifests["Deployment"]["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]


def test_the_token_comes_from_a_secret_and_never_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_TOKEN", "tl_secret_value_never_rendered")
    deployment, workload = _plain()
    manifests = render.render(deployment, workload, image="img", namespace="models",
                              control_plane_url="https://threadline.example.com", token_secret="serving-token")
    env = {e["name"]: e for e in _container(manifests)["env"]}
    assert env["THREADLINE_TOKEN"] == {"name": "THREADLINE_TOKEN",
                                       "valueFrom": {"secretKeyRef": {"name": "serving-token", "key": "token"}}}
    assert env["THREADLINE_URL"]["value"] == "https://threadline.example.com"
    assert env["THREADLINE_HOME"]["value"] == "/var/lib/threadline"
    text = render.to_yaml(manifests)
    assert "tl_secret_value_never_rendered" not in text
    assert not any(kind == "Secret" for kind in (m["kind"] for m in manifests))


def test_probes_follow_the_health_spec() -> None:
    container = _container(CASES["plain"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["livenessProbe"]["failureThreshold"] == 4
    assert container["readinessProbe"]["failureThreshold"] == 4
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    # loading the models may take the whole readiness timeout (90 s) before liveness may restart the pod
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 90


def test_serve_arguments_carry_revisions_and_serving_settings() -> None:
    container = _container(CASES["plain"])
    assert container["command"] == ["threadline"]
    assert container["args"] == [
        "serve", "-m", "fraud-model@7=100", "--host", "0.0.0.0", "--port", "8080",
        "--deployment-name", "fraud-scorer", "--max-batch-rows", "32", "--max-wait-ms", "2.5",
        "--rate-limit", "50", "--rate-burst", "20", "--escalate-below", "0.6"]
    assert "--escalate-below" not in _container(CASES["fixed"])["args"]


def test_canary_weights_split_traffic_in_the_pod_and_are_annotated() -> None:
    args = _container(CASES["canary"])["args"]
    assert args[:5] == ["serve", "-m", "fraud-model@7=90", "-m", "fraud-model@8=10"]
    annotations = _by_kind(CASES["canary"])["Deployment"]["metadata"]["annotations"]
    assert annotations[render.STABLE] == "fraud-model@7"
    assert annotations[render.CANARY] == "fraud-model@8"
    assert annotations[render.CANARY_WEIGHT] == "10"
    assert yaml.safe_load(annotations[render.DIGESTS]) == {"fraud-model@7": DIGEST_7, "fraud-model@8": DIGEST_8}
    full = _container(CASES["canary-full"])["args"]
    assert full[:4] == ["serve", "-m", "fraud-model@8=100", "--host"]


def test_resources_gpu_node_selector_and_tolerations() -> None:
    manifests = _by_kind(CASES["gpu"])
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "pool": "gpu"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute", "tolerationSeconds": 300}]
    plain = _container(CASES["plain"])["resources"]
    assert plain == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    assert "nodeSelector" not in _by_kind(CASES["plain"])["Deployment"]["spec"]["template"]["spec"]


def test_labels_and_selectors() -> None:
    manifests = _by_kind(CASES["plain"])
    expected = {
        "team": "risk",  # the spec's own labels come along
        "app.kubernetes.io/name": "threadline-serve", "app.kubernetes.io/instance": "fraud-scorer-production",
        "app.kubernetes.io/managed-by": "threadline", "threadline.dev/deployment": "fraud-scorer",
        "threadline.dev/environment": "production", "threadline.dev/owner": "risk-team",
        "threadline.dev/model": "fraud-model", "threadline.dev/version": "7"}
    for manifest in manifests.values():
        assert manifest["metadata"]["labels"] == expected
        assert manifest["metadata"]["namespace"] == "models"
    selector = {"app.kubernetes.io/name": "threadline-serve", "app.kubernetes.io/instance": "fraud-scorer-production"}
    deployment = manifests["Deployment"]["spec"]
    assert deployment["selector"] == {"matchLabels": selector}
    assert deployment["template"]["metadata"]["labels"] == expected
    assert manifests["Service"]["spec"]["selector"] == selector
    assert manifests["Service"]["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080,
                                                      "targetPort": "http"}]
    assert manifests["PodDisruptionBudget"]["spec"]["selector"] == {"matchLabels": selector}


def test_our_labels_win_over_the_specs() -> None:
    deployment = _deployment(PLAIN.replace("labels: {team: risk}", "labels: {app.kubernetes.io/managed-by: helm}"))
    manifests = _render(deployment, _workload(deployment))
    assert all(m["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "threadline" for m in manifests)


def test_an_hpa_owns_the_replica_count_when_it_may_vary() -> None:
    plain = _by_kind(CASES["plain"])
    assert "replicas" not in plain["Deployment"]["spec"]
    assert plain["HorizontalPodAutoscaler"]["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud-scorer-production"},
        "minReplicas": 1, "maxReplicas": 4,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                "averageUtilization": 70}}}]}
    assert plain["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1  # one replica may always be drained
    assert plain["Deployment"]["metadata"]["annotations"][render.AUTOSCALED] == "true"
    assert plain["Deployment"]["metadata"]["annotations"][render.REPLICAS] == "1"
    gpu = _by_kind(CASES["gpu"])
    assert gpu["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
    assert gpu["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_fixed_replicas_have_no_hpa() -> None:
    for case, replicas in (("fixed", 2), ("canary", 3), ("zero", 0)):
        manifests = _by_kind(CASES[case])
        assert "HorizontalPodAutoscaler" not in manifests, case
        assert manifests["Deployment"]["spec"]["replicas"] == replicas, case
        assert manifests["Deployment"]["metadata"]["annotations"][render.AUTOSCALED] == "false"
    assert _by_kind(CASES["fixed"])["PodDisruptionBudget"]["spec"] == {
        "minAvailable": 1, "selector": {"matchLabels": render.selector_labels(("batch-ranker", "dev"))},
        "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def test_a_bad_revision_never_takes_capacity_away() -> None:
    strategy = _by_kind(CASES["plain"])["Deployment"]["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_rendering_is_deterministic() -> None:
    first = render.to_yaml(_cases()["canary"])
    again = render.to_yaml(_cases()["canary"])
    assert first == again
    assert list(yaml.safe_load_all(first)) == CASES["canary"]
    assert first.startswith("---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n")


def test_the_template_hash_changes_with_the_pod_and_only_with_it() -> None:
    deployment, workload = _plain()

    def template_hash(manifests: list[dict[str, Any]]) -> str:
        deployment_manifest = _by_kind(manifests)["Deployment"]
        value = deployment_manifest["metadata"]["annotations"][render.TEMPLATE_HASH]
        assert deployment_manifest["spec"]["template"]["metadata"]["annotations"] == {render.TEMPLATE_HASH: value}
        return str(value)

    base = template_hash(_render(deployment, workload))
    assert template_hash(_render(deployment, workload)) == base
    more = model.Workload(**{**workload.__dict__, "replicas": 3})
    assert template_hash(_render(deployment, more)) == base
    newer = model.Workload(**{**workload.__dict__, "stable": model.Revision("fraud-model", 8, DIGEST_8)})
    assert template_hash(_render(deployment, newer)) != base


def test_resource_names_are_dns_labels_and_stable() -> None:
    assert render.resource_name(("fraud-scorer", "production")) == "fraud-scorer-production"
    assert render.resource_name(("7eleven", "prod")) == "tl-7eleven-prod"
    long_a = render.resource_name(("a" * 40, "b" * 40))
    long_b = render.resource_name(("a" * 40, "b" * 39 + "c"))
    for name in (long_a, long_b):
        assert len(name) == 63 and DNS_1035.match(name), name
    assert long_a != long_b
    assert long_a == render.resource_name(("a" * 40, "b" * 40))
    cut_at_hyphen = render.resource_name(("a" * 53, "b" * 20))  # the cut falls right after the hyphen
    assert DNS_1035.match(cut_at_hyphen) and "--" not in cut_at_hyphen


def test_a_workload_of_another_deployment_is_refused() -> None:
    deployment, workload = _plain()
    other = model.Workload(**{**workload.__dict__, "key": ("other", "production")})
    with pytest.raises(ValueError, match="does not belong"):
        _render(deployment, other)
