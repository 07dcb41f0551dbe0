"""The composition root: settings -> adapters -> services -> apps.

This is the one place that knows which adapter backs which port.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from threadline import files, ports
from threadline.adapters.artifacts.local import LocalArtifactStore
from threadline.adapters.clock import SystemClock
from threadline.adapters.secretbox import SecretBox
from threadline.adapters.signing import Ed25519Signer
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.adapters.webhooks import WebhookDispatcher
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, names
from threadline.gitops.agent import Agent, AgentLoop
from threadline.governance.reports import Reports, Retention
from threadline.governance.service import Governance
from threadline.identity.mfa import Mfa
from threadline.capacity.loop import CapacityLoop
from threadline.capacity.service import Capacity
from threadline.capacity.sampling import Sampler
from threadline.monitoring.alerting import AlertEvaluator, MonitorLoop
from threadline.monitoring.feedback import Feedback
from threadline.monitoring.log_location import LogLocation
from threadline.monitoring.service import Monitoring
from threadline.identity.service import Identity
from threadline.registry.service import Registry
from threadline.review.service import Reviews
from threadline.settings import Settings


@dataclass
class Services:
    settings: Settings
    store: SqlMetadataStore
    artifacts: ports.ArtifactStore
    signer: Ed25519Signer
    audit: AuditLog
    registry: Registry
    identity: Identity
    mfa: Mfa
    governance: Governance
    reports: Reports
    webhooks: WebhookDispatcher
    monitoring: Monitoring
    feedback: Feedback
    reviews: Reviews
    capacity_service: Capacity
    gitops: AgentLoop | None = None  # set by `threadline up` when a repository is configured
    monitor: MonitorLoop | None = None  # set by `threadline up` unless THREADLINE_MONITOR_INTERVAL is 0
    capacity: CapacityLoop | None = None  # set by `threadline up` for the local runtime's deployments

    def close(self) -> None:
        self.webhooks.stop()
        self.store.close()


def artifact_store(url: str, settings: Settings) -> ports.ArtifactStore:
    if url.startswith("s3://"):
        from threadline.adapters.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore.from_url(url, endpoint_url=settings.s3_endpoint_url)
    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" in url:
        raise errors.ConfigurationError(
            f"unsupported artifacts URL {url.split('://')[0]}://...: use a folder path, file://PATH or "
            "s3://BUCKET/PREFIX")
    return LocalArtifactStore(Path(url).expanduser())


def build(settings: Settings) -> Services:
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    clock = SystemClock()
    store = SqlMetadataStore(settings.resolved_database_url)
    artifacts = artifact_store(settings.resolved_artifacts_url, settings)
    signer = Ed25519Signer.load_or_create(settings.resolved_audit_key_path)
    audit = AuditLog(signer, clock, checkpoint_every=settings.audit_checkpoint_every)
    governance = Governance(store, audit, clock, webhooks=bool(settings.webhook_urls))
    registry = Registry(store, artifacts, audit, clock, settings.workdir, alias_guard=governance.guard_alias)
    identity = Identity(store, audit, clock)
    mfa = Mfa(store, audit, clock, SecretBox.load_or_create(settings.secrets_key_path))
    reports = Reports(store, audit, governance, clock, signer,
                      Retention(settings.audit_retention_days, settings.prediction_log_retention_days), tls=False)
    log = LogLocation.parse(settings.prediction_log_url or str(home / "predictions"),
                            s3_endpoint_url=settings.s3_endpoint_url)
    monitoring = Monitoring(store, artifacts, audit, log, clock)
    feedback = Feedback(store, audit, clock, log)
    return Services(settings, store, artifacts, signer, audit, registry, identity, mfa, governance, reports,
                    _webhooks(settings, store, clock), monitoring, feedback,
                    Reviews(store, audit, clock, signer, artifacts, settings.workdir),
                    Capacity(store, clock, settings.price_table, minimum_minutes=settings.capacity_minimum_minutes))


def _webhooks(settings: Settings, store: SqlMetadataStore, clock: SystemClock) -> WebhookDispatcher:
    """Approval events go to the configured URLs; alerts go to the receivers their specs name."""
    if settings.webhook_secret is not None:
        secret = settings.webhook_secret.get_secret_value().encode("utf-8")
    elif settings.webhook_urls:
        raise errors.ConfigurationError("THREADLINE_WEBHOOK_URLS is set but THREADLINE_WEBHOOK_SECRET is not: "
                                        "receivers need it to check that notifications come from Threadline")
    else:
        path = settings.webhook_secret_path
        if not path.exists():
            files.create_secret_file(path, secrets.token_hex(32).encode("ascii"))
        secret = path.read_bytes().strip()
    return WebhookDispatcher(store, clock, settings.webhook_urls, secret)


def write_admin_token(services: Services) -> Path | None:
    """On first start, create the admin and write its token to a 0600 file; never print it."""
    issued = services.identity.bootstrap_admin()
    path = services.settings.admin_token_path
    if issued is None:
        return path if path.exists() else None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(issued.secret + "\n")
    os.chmod(path, 0o600)
    return path


def prepare_control_plane(services: Services) -> Path | None:
    """What ``threadline up`` (and the quickstart's embedded one) set up around the API: the
    admin's token on first start, the webhook sender, and the loops the app's lifespan starts
    (GitOps agent, alert rules, capacity). Returns where the admin token is."""
    token_path = write_admin_token(services)
    services.webhooks.start()
    services.gitops = gitops_agent(services)
    services.monitor = monitor_loop(services)
    services.capacity = capacity_loop(services)
    return token_path


AGENT_USER = "gitops-agent"


def service_token(services: Services, path: Path, name: str, roles: tuple[access.Role, ...]) -> str:
    """The token a component uses, kept in a 0600 file in the home and renewed when it stops working."""
    current = path.read_text().strip() if path.exists() else None
    fresh = services.identity.service_token(name, roles, current)
    if fresh is None:
        assert current is not None
        return current
    files.atomic_write(path, lambda out: out.write(fresh.encode() + b"\n"))
    os.chmod(path, 0o600)
    return fresh


def gitops_agent(services: Services) -> AgentLoop | None:
    """The GitOps agent ``threadline up`` embeds when a repository is configured."""
    from threadline.adapters.git_source import GitSource

    settings = services.settings
    if not settings.gitops_repo:
        return None
    home = settings.resolved_home
    source = GitSource(settings.gitops_repo, settings.gitops_ref, home / "gitops-cache")
    runtime = runtime_for(services)
    agent = Agent(source, runtime, names.environment_name(settings.gitops_environment, field="gitops_environment"),
                  store=services.store, audit=services.audit, clock=SystemClock(), registry=services.registry,
                  governance=services.governance)
    return AgentLoop(agent, settings.gitops_interval, runtime=runtime, wait_until=lambda: _answers(settings.url))


def alert_evaluator(services: Services) -> AlertEvaluator:
    settings = services.settings
    return AlertEvaluator(services.store, services.audit, SystemClock(), services.monitoring,
                          retrain_commands=settings.retrain_commands,
                          log=services.monitoring.log)


def capacity_loop(services: Services) -> CapacityLoop | None:
    """Utilization sampling of the deployments the embedded agent runs, and autoscaling on the local runtime."""
    from datetime import timedelta

    from threadline.adapters import serving_metrics

    settings = services.settings
    if services.gitops is None or settings.capacity_interval <= 0:
        return None
    sampler = Sampler(services.store, services.gitops.runtime,
                      retention=timedelta(days=settings.utilization_retention_days), p99=serving_metrics.p99_ms)
    return CapacityLoop(services.store, services.gitops.runtime, SystemClock(), sampler,
                        interval=settings.capacity_interval, autoscale=settings.gitops_runtime == "local")


def monitor_loop(services: Services) -> MonitorLoop | None:
    interval = services.settings.monitor_interval
    return MonitorLoop(alert_evaluator(services), interval) if interval > 0 else None


def _answers(url: str) -> bool:
    import httpx

    try:
        httpx.get(url + "/api/v1/whoami", timeout=1.0)
    except httpx.TransportError:
        return False
    return True


def runtime_for(services: Services) -> ports.Runtime:
    settings = services.settings
    home = settings.resolved_home
    token = service_token(services, home / "agent.token", AGENT_USER, (access.Role.DEPLOYER,))
    if settings.gitops_runtime == "kubernetes":
        from threadline.adapters.runtime_kubernetes import KubernetesRuntime

        return KubernetesRuntime(settings.kubernetes_namespace, settings.kubernetes_image,
                                 settings.kubernetes_control_plane_url or settings.url, metrics_token=token)
    from threadline.adapters.runtime_local import LocalRuntime

    return LocalRuntime(home / "runtime", control_plane_url=settings.url, token=token, home=home)
