"""Kubernetes manifests for one deployment (pure: dicts in, dicts out, no I/O).

``render`` turns a ModelDeployment and the Workload the planner chose into the objects the
Kubernetes runtime applies with server-side apply: ServiceAccount, NetworkPolicy, Service,
PodDisruptionBudget, Deployment and, when the replica count may vary, a
HorizontalPodAutoscaler. They are listed in the order they are applied, so that pods never
exist before the policy that guards them or the account they run as.

The Deployment carries everything the runtime needs to read the workload back in ``observe``
(revisions, digests, canary weight, config hash, declared replicas) as ``threadline.dev/*``
annotations: the cluster is the state, nothing is kept beside it. The output is deterministic
(same input, same bytes), so a re-apply of an unchanged workload is a no-op and the tests can
compare renders.

Choices worth knowing:

* Replicas: when ``spec.replicas.max`` exceeds ``max(min, 1)`` an HPA owns the count and the
  Deployment leaves ``replicas`` out (a field set by the applier would be reset on every apply,
  fighting the HPA). Otherwise the Deployment says ``replicas: workload.replicas`` and no HPA is
  rendered (the runtime prunes one left from before). An HPA cannot scale to zero, so
  ``min: 0`` means "at least one" while autoscaling, and zero only when the planner asks for 0.
* Egress is not restricted: serving pods reach the control plane, whose address is a URL that a
  NetworkPolicy cannot express (it selects pods and CIDRs, not hostnames), and possibly an
  artifact store and a telemetry collector. Ingress is default-deny except TCP 8080.
  Operators who want egress rules can add a policy of their own: policies are additive.
* ``enableServiceLinks: false``: Kubernetes would otherwise inject ``<SERVICE>_PORT`` variables,
  and a Service named ``threadline`` would set ``THREADLINE_PORT=tcp://...``, which the
  settings of ``threadline serve`` would try to read.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import yaml

from threadline.gitops import model, spec

PORT = 8080
HOME = "/var/lib/threadline"
USER_ID = 10001
CPU_TARGET_PERCENT = 70
TOKEN_KEY = "token"  # the key of the serving token in its Secret

# Labels and annotations the runtime reads back.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "threadline"
DEPLOYMENT_LABEL = "threadline.dev/deployment"
ENVIRONMENT_LABEL = "threadline.dev/environment"
STABLE = "threadline.dev/stable"
CANARY = "threadline.dev/canary"
CANARY_WEIGHT = "threadline.dev/canary-weight"
DIGESTS = "threadline.dev/digests"
CONFIG_HASH = "threadline.dev/config-hash"
REPLICAS = "threadline.dev/replicas"
AUTOSCALED = "threadline.dev/autoscaled"
TEMPLATE_HASH = "threadline.dev/template-hash"  # on the Deployment and its pods: tells new pods from old

# Every kind render may produce, in apply order (the runtime deletes in reverse).
KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)

_MAX_NAME = 63


def resource_name(key: model.Key) -> str:
    """``<name>-<environment>``, a valid name for every kind rendered (a DNS-1035 label).

    A Service name must start with a letter, so a name starting with a digit gets ``tl-``.
    Beyond 63 characters the name is cut and ends with 8 hex digits of the full name's
    SHA-256, so that it stays unique and the same on every render.
    """
    name, environment = key
    full = f"{name}-{environment}"
    if not full[0].isalpha():
        full = "tl-" + full
    if len(full) <= _MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return full[:_MAX_NAME - len(digest) - 1].rstrip("-") + "-" + digest


def selector_labels(key: model.Key) -> dict[str, str]:
    """The labels that pick this deployment's pods; never changes for a key (selectors are immutable)."""
    return {"app.kubernetes.io/name": "threadline-serve", "app.kubernetes.io/instance": resource_name(key)}


def autoscaled(deployment: spec.ModelDeployment, workload: model.Workload) -> bool:
    """Whether an HPA owns the replica count (see the module docstring)."""
    replicas = deployment.spec.replicas
    return workload.replicas > 0 and replicas.max > max(replicas.min, 1)


def render(deployment: spec.ModelDeployment, workload: model.Workload, *, image: str, namespace: str,
           control_plane_url: str, token_secret: str = "threadline-serving-token") -> list[dict[str, Any]]:
    """The manifests of one deployment, in apply order.

    ``token_secret`` names a Secret in ``namespace`` whose key ``token`` holds the Threadline
    token the pods use; the token itself never appears in a manifest.
    """
    if deployment.key != workload.key:
        raise ValueError(f"workload {model.key_text(workload.key)} does not belong to deployment "
                         f"{model.key_text(deployment.key)}")
    name = resource_name(workload.key)
    labels = _labels(deployment, workload)
    selector = selector_labels(workload.key)

    def metadata(annotations: dict[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if annotations:
            meta["annotations"] = annotations
        return meta

    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(),
         "automountServiceAccountToken": False},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(),
         "spec": {"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Ingress"],
                  "ingress": [{"ports": [{"protocol": "TCP", "port": PORT}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": metadata(),
         "spec": {"type": "ClusterIP", "selector": dict(selector),
                  "ports": [{"name": "http", "protocol": "TCP", "port": PORT, "targetPort": "http"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(),
         "spec": {**({"minAvailable": 1} if deployment.spec.replicas.min >= 2 else {"maxUnavailable": 1}),
                  "selector": {"matchLabels": dict(selector)},
                  # a crash-looping pod must not block a node drain
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
    ]
    template = _pod_template(deployment, workload, labels, name, image, control_plane_url, token_secret)
    template_hash = _digest(template)
    template["metadata"]["annotations"] = {TEMPLATE_HASH: template_hash}
    scaled = autoscaled(deployment, workload)
    deployment_spec: dict[str, Any] = {} if scaled else {"replicas": workload.replicas}
    deployment_spec.update({
        "selector": {"matchLabels": dict(selector)},
        # new pods must be ready before an old one goes: a bad revision never takes capacity away
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "progressDeadlineSeconds": math.ceil(deployment.spec.health.readiness_timeout) + 60,
        "revisionHistoryLimit": 5,
        "template": template,
    })
    manifests.append({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": metadata(_annotations(workload, scaled, template_hash)),
                      "spec": deployment_spec})
    if scaled:
        replicas = deployment.spec.replicas
        manifests.append({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata(),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": max(replicas.min, 1), "maxReplicas": replicas.max,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": CPU_TARGET_PERCENT}}}]}})
    return manifests


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    """Multi-document YAML in the order the keys were rendered (apiVersion, kind, metadata, spec)."""
    return yaml.safe_dump_all(manifests, sort_keys=False, explicit_start=True, default_flow_style=False,
                              width=4096)


def serve_args(workload: model.Workload) -> list[str]:
    """The arguments of ``threadline serve`` for a workload (the traffic split is done in-process)."""
    args = ["serve"]
    for revision, weight in workload.weights():
        args += ["-m", f"{revision.ref}={weight}"]
    serving = workload.serving
    args += ["--host", "0.0.0.0", "--port", str(PORT), "--deployment-name", workload.key[0],
             "--max-batch-rows", str(serving.max_batch_rows), "--max-wait-ms", _number(serving.max_wait_ms),
             "--rate-limit", _number(serving.rate_limit), "--rate-burst", str(serving.rate_burst)]
    if workload.escalate_below is not None:
        args += ["--escalate-below", _number(workload.escalate_below)]
    for rule in workload.escalate_rules:
        args += ["--escalate-rule", rule]
    return args


def _labels(deployment: spec.ModelDeployment, workload: model.Workload) -> dict[str, str]:
    """The user's labels, then ours (ours win: the runtime and the selectors depend on them).
    ``threadline.dev/version`` is the stable revision's: the canary shows in the annotations."""
    name, environment = workload.key
    return {**deployment.metadata.labels, **selector_labels(workload.key), MANAGED_BY: MANAGER,
            DEPLOYMENT_LABEL: name, ENVIRONMENT_LABEL: environment,
            "threadline.dev/owner": deployment.metadata.owner,
            "threadline.dev/model": workload.stable.model, "threadline.dev/version": str(workload.stable.version)}


def _annotations(workload: model.Workload, scaled: bool, template_hash: str) -> dict[str, str]:
    revisions = [workload.stable] + ([workload.canary] if workload.canary is not None else [])
    annotations = {STABLE: workload.stable.ref}
    if workload.canary is not None:
        annotations[CANARY] = workload.canary.ref
    annotations.update({
        CANARY_WEIGHT: str(workload.canary_weight),
        DIGESTS: json.dumps({r.ref: r.digest for r in revisions}, sort_keys=True, separators=(",", ":")),
        CONFIG_HASH: workload.config_hash,
        REPLICAS: str(workload.replicas),
        AUTOSCALED: "true" if scaled else "false",
        TEMPLATE_HASH: template_hash,
    })
    return annotations


def _pod_template(deployment: spec.ModelDeployment, workload: model.Workload, labels: dict[str, str],
                  name: str, image: str, control_plane_url: str, token_secret: str) -> dict[str, Any]:
    wanted = deployment.spec
    resources: dict[str, Any] = {"requests": {"cpu": wanted.resources.cpu, "memory": wanted.resources.memory},
                                 "limits": {"cpu": wanted.resources.cpu, "memory": wanted.resources.memory}}
    if wanted.resources.gpu > 0:
        resources["limits"]["nvidia.com/gpu"] = str(wanted.resources.gpu)
    health = wanted.health

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2,
                "failureThreshold": failures}

    container = {
        "name": "serve",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["threadline"],
        "args": serve_args(workload),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [
            {"name": "THREADLINE_URL", "value": control_plane_url},
            {"name": "THREADLINE_TOKEN", "valueFrom": {"secretKeyRef": {"name": token_secret, "key": TOKEN_KEY}}},
            {"name": "THREADLINE_HOME", "value": HOME},
        ],
        "resources": resources,
        # The port opens only once every model is loaded: the startup probe gives the pod the
        # spec's readiness timeout for that before liveness may restart it.
        "startupProbe": probe("/v2/health/live", 5, max(1, math.ceil(health.readiness_timeout / 5))),
        "readinessProbe": probe("/v2/health/ready", 5, health.failure_threshold),
        "livenessProbe": probe("/v2/health/live", max(1, math.ceil(health.period)), health.failure_threshold),
        "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "home", "mountPath": HOME}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID, "fsGroup": USER_ID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": selector_labels(workload.key)}}],
    }
    if wanted.node_selector:
        pod["nodeSelector"] = dict(sorted(wanted.node_selector.items()))
    if wanted.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in wanted.tolerations]
    return {"metadata": {"labels": dict(labels)}, "spec": pod}


def _number(value: float) -> str:
    """``0`` not ``0.0``, ``0.6`` as typed: the shortest text that reads back as the same number."""
    return str(int(value)) if math.isfinite(value) and value == int(value) else repr(float(value))


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
