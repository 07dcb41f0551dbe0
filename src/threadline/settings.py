"""All configuration, read from the environment once (prefix ``THREADLINE_``).

Nothing else in Threadline reads ``os.environ``; everything receives a Settings value.
Backends are chosen by URL: ``sqlite:///…`` or ``postgresql://…`` for metadata,
a folder path, ``file://…`` or ``s3://bucket/prefix`` for artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8700


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    home: Path = Field(default=Path(".threadline"), description="State folder of the embedded default.")
    database_url: str | None = Field(default=None, description="Default: SQLite in the home.")
    artifacts_url: str | None = Field(default=None, description="Default: a folder in the home.")
    s3_endpoint_url: str | None = Field(default=None, description="For S3-compatible stores (MinIO, ...).")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_upload_bytes: int = Field(default=2 << 30, gt=0)
    max_request_bytes: int = Field(default=32 << 20, gt=0)
    audit_key_path: Path | None = Field(default=None, description="Default: <home>/audit-signing.key.")
    audit_checkpoint_every: int = Field(default=100, gt=0)
    audit_retention_days: int = Field(default=2555, gt=0, description="How long audit entries are kept (7 years).")
    prediction_log_retention_days: int = Field(default=183, gt=0,
                                               description="How long prediction logs are kept (6 months).")
    webhook_urls: list[str] = Field(default_factory=list,
                                    description="Where approval events are POSTed (JSON list in the env).")
    webhook_secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key for webhook signatures "
                                                                      "(default: generated in <home>/webhook.secret).")
    prediction_log_url: str | None = Field(default=None, description=(
        "Where serving processes keep the prediction log and monitoring reads it: a folder or "
        "s3://BUCKET/PREFIX (default: <home>/predictions)."))
    capacity_interval: float = Field(default=10.0, ge=0, description="Seconds between utilization samples "
                                                                     "(and autoscaling) of local deployments; 0: never.")
    utilization_retention_days: int = Field(default=30, gt=0, description="How long per-minute utilization "
                                                                          "is kept.")
    capacity_minimum_minutes: int = Field(default=60, ge=1, description="Measured minutes a recommendation "
                                                                         "needs at least.")
    price_table: Path | None = Field(default=None, description="YAML price table for cost reports (default: the "
                                                               "built-in list prices).")
    monitor_interval: float = Field(default=60.0, ge=0, description="Seconds between evaluations of the "
                                                                    "deployments' alert rules; 0: never.")
    retrain_commands: dict[str, list[str]] = Field(
        default_factory=dict, description="Commands a spec may name in monitoring.retrain.command (JSON object "
                                          "of name -> argv); a spec can never run anything not listed here.")
    session_lifetime_seconds: int = Field(default=8 * 3600, gt=0, description="How long a dashboard sign-in "
                                                                              "lasts (absolute, from sign-in).")
    gitops_repo: str | None = Field(default=None, description="Git repository of ModelDeployment specs; "
                                                              "`threadline up` runs the agent when set.")
    gitops_ref: str = Field(default="main", description="Branch, tag or commit to follow.")
    gitops_environment: str = Field(default="production", description="The environment this agent deploys.")
    gitops_interval: float = Field(default=30.0, gt=0, description="Seconds between passes.")
    gitops_runtime: Literal["local", "kubernetes"] = "local"
    kubernetes_namespace: str = "threadline"
    kubernetes_image: str = "ghcr.io/threadline/threadline:latest"
    kubernetes_control_plane_url: str | None = Field(
        default=None, description="The control plane's URL as pods see it (default: this host's URL).")

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'threadline.db'}"

    @property
    def resolved_artifacts_url(self) -> str:
        return self.artifacts_url or str(self.resolved_home / "artifacts")

    @property
    def resolved_audit_key_path(self) -> Path:
        return self.audit_key_path or self.resolved_home / "audit-signing.key"

    @property
    def admin_token_path(self) -> Path:
        return self.resolved_home / "admin.token"

    @property
    def url(self) -> str:
        """Where this control plane answers (what serve processes started by the agent call)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def secrets_key_path(self) -> Path:
        return self.resolved_home / "secrets.key"

    @property
    def resolved_session_key_path(self) -> Path:
        return self.resolved_home / "session.key"

    @property
    def webhook_secret_path(self) -> Path:
        return self.resolved_home / "webhook.secret"

    @property
    def workdir(self) -> Path:
        return self.resolved_home / "tmp"


class ClientSettings(BaseSettings):
    """Where the CLI and the SDK find the control plane when not told explicitly."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    url: str | None = None
    token: str | None = None
    home: Path = Path(".threadline")
    port: int = DEFAULT_PORT


class TelemetrySettings(BaseSettings):
    """The standard OpenTelemetry variable (no THREADLINE_ prefix): where spans are exported."""

    model_config = SettingsConfigDict(extra="ignore")

    otel_exporter_otlp_endpoint: str | None = None


class ServeWorkerSettings(BaseSettings):
    """How ``threadline serve --workers N`` hands its configuration to each worker process."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    serve_config: str
