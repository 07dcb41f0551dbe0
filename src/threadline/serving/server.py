"""Build a serving process: load every version, then start the OIP v2 app under uvicorn.

Everything is loaded and verified before the port opens, so ``/v2/health/ready`` is true
from the first request it answers. ``--workers N`` starts N processes on one port (uvicorn
workers), each loading its own copy; a single worker stays one process.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable

from threadline.client import Client
from threadline.domain import errors, escalation_rules, names
from threadline.serving import app as app_module
from threadline.serving import tracing
from threadline.serving.auth import ControlPlaneTokens, TokenFile, TokenVerifier
from threadline.serving.batching import BatchPolicy, MicroBatcher
from threadline.serving.bundle_spool import BundleShipper, BundleSpool
from threadline.serving.loading import ModelRef, load_version
from threadline.serving.metrics import ServingMetrics
from threadline.serving.predlog import PredictionLog
from threadline.serving.ratelimit import RateLimiter
from threadline.serving.segment_upload import SegmentUploader
from threadline.serving.traffic import TrafficSplit

if TYPE_CHECKING:
    from threadline.gitops import spec as spec_module

log = logging.getLogger("threadline.serving")
CONFIG_ENV = "THREADLINE_SERVE_CONFIG"


@dataclass
class ServeConfig:
    """What ``threadline serve`` was asked for; passed to worker processes as JSON."""

    models: list[str]
    control_plane: str
    token: str | None
    home: str
    deployment: str | None = None
    token_file: str | None = None
    log_dir: str | None = None
    max_batch_rows: int = 64
    max_wait_ms: float = 0.0
    rate_limit: float = 0.0
    rate_burst: int = 100
    max_body_bytes: int = 8 << 20
    escalate_below: float | None = None
    escalate_rules: list[str] = field(default_factory=list)
    escalation_queue: str | None = None
    flush_interval: float = 0.25  # short flushes keep each one brief: p99 follows their size
    otlp_endpoint: str | None = None
    s3_endpoint_url: str | None = None


@dataclass(frozen=True)
class DeploymentServing:
    """What ``--deployment FILE`` contributes to a ServeConfig."""

    name: str
    models: list[str]
    batching: tuple[int, float, float, int]  # max rows, max wait ms, rate limit, rate burst
    escalate_below: float | None
    escalate_rules: list[str]
    escalation_queue: str | None


def from_deployment(deployments: list[spec_module.ModelDeployment], source: Path) -> DeploymentServing:
    if len(deployments) != 1:
        raise errors.InvalidInput(f"{source} holds {len(deployments)} ModelDeployments; serve needs exactly one")
    document = deployments[0]
    spec = document.spec
    ref = str(spec.version) if spec.version is not None else str(spec.alias)
    serving = spec.serving
    return DeploymentServing(
        name=document.metadata.name, models=[f"{spec.model}@{ref}"],
        batching=(serving.max_batch_rows, serving.max_wait_ms, serving.rate_limit, serving.rate_burst),
        escalate_below=spec.escalation.confidence_below if spec.escalation else None,
        escalate_rules=list(spec.escalation.rules) if spec.escalation else [],
        escalation_queue=spec.escalation.queue if spec.escalation else None)


def build_state(config: ServeConfig, progress: Callable[[str], None] = lambda _m: None) -> app_module.ServingState:
    refs = [ModelRef.parse(text) for text in config.models]
    if not refs:
        raise errors.InvalidInput("nothing to serve: give at least one --model NAME@VERSION")
    home = Path(config.home)
    cache, workdir = home / "serving-cache", home / "tmp"
    workdir.mkdir(parents=True, exist_ok=True)
    metrics = ServingMetrics()
    policy = BatchPolicy(config.max_batch_rows, config.max_wait_ms)
    versions: dict[str, dict[int, app_module.ServedVersion]] = {}
    weights: dict[str, dict[int, int]] = {}
    with Client(config.control_plane, config.token) as client:
        for ref in refs:
            progress(f"loading {ref.name}@{ref.ref}")
            loaded = load_version(client, ref, cache, workdir)
            if loaded.version in versions.get(ref.name, {}):
                raise errors.InvalidInput(f"{ref.name}@{loaded.version} is listed twice")
            metrics.load_seconds.labels(loaded.model, str(loaded.version)).set(loaded.load_seconds)
            counts = metrics.version(loaded.model, str(loaded.version))
            # One thread per version: a slow model never holds up another one's batches.
            batcher = MicroBatcher(loaded.predictor.predict, policy, counts.batched,
                                   name=f"predict-{ref.name}@{loaded.version}")
            versions.setdefault(ref.name, {})[loaded.version] = app_module.ServedVersion(loaded, batcher, counts)
            weights.setdefault(ref.name, {})[loaded.version] = ref.weight
            progress(f"loaded {ref.name}@{loaded.version} in {loaded.load_seconds:.2f} s")
    served = {name: app_module.ServedModel(name, versions[name], TrafficSplit(weights[name])) for name in versions}
    deployment = names.model_name(config.deployment or refs[0].name, field="deployment")
    uploader = None
    if config.log_dir and config.log_dir.startswith("s3://"):
        staging = home / "predictions-outbox"
        uploader = SegmentUploader(staging, config.log_dir, endpoint_url=config.s3_endpoint_url)
        folder = staging
    else:
        folder = Path(config.log_dir) if config.log_dir else home / "predictions"
    predictions = PredictionLog(folder, flush_interval=config.flush_interval, on_flush=metrics.logged.inc,
                                on_drop=metrics.dropped.inc, on_seal=uploader.enqueue if uploader else None)
    spool = BundleSpool(home / "bundle-spool" / deployment)
    shipper = BundleShipper(spool, config.control_plane, config.token, on_shipped=metrics.bundles_shipped.inc)
    # Everything loaded so far lives as long as the process: keep the garbage collector from
    # re-scanning it on every full collection (long pauses with large models). Only the young
    # generations are collected first: a full collection here finds a few dozen objects and
    # takes a tenth of a second.
    gc.collect(1)
    gc.freeze()
    return app_module.ServingState(
        deployment=deployment, models=served, tokens=_tokens(config),
        limiter=RateLimiter(config.rate_limit, config.rate_burst), predictions=predictions, metrics=metrics,
        tracer=tracing.tracer(config.otlp_endpoint, f"threadline-serve-{deployment}"),
        max_body_bytes=config.max_body_bytes, escalate_below=config.escalate_below,
        escalate_rules=_rules(config.escalate_rules),
        escalation_queue=config.escalation_queue, bundles=spool, shipper=shipper, uploader=uploader, ready=True)


def _rules(texts: list[str]) -> tuple[escalation_rules.Rule, ...]:
    try:
        return tuple(escalation_rules.parse(text) for text in texts)
    except ValueError as exc:
        raise errors.InvalidInput(str(exc), field="escalate_rule") from None


def _tokens(config: ServeConfig) -> TokenVerifier:
    if config.token_file:
        return TokenFile(Path(config.token_file))
    return ControlPlaneTokens(config.control_plane)


def create_app(state: app_module.ServingState) -> app_module.ServingApp:
    app = app_module.create_app(state)

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        if state.shipper is not None:
            state.shipper.start()  # here, not in build_state: each --workers process ships from its own thread
        if state.uploader is not None:
            state.uploader.start()
        try:
            yield
        finally:
            state.ready = False
            for model in state.models.values():
                for version in model.versions.values():
                    await version.batcher.close()
            if state.tokens is not None:
                await state.tokens.close()
            state.predictions.close()  # flushes every buffered record and seals every segment
            if state.uploader is not None:
                state.uploader.close()  # uploads the sealed segments (what fails stays staged)
            if state.shipper is not None:
                state.shipper.close()  # one last attempt; what is left stays spooled for the next start
            state.tracer.shutdown()  # and every span still queued
            log.info("prediction log closed: %d logged, %d dropped", state.predictions.logged,
                     state.predictions.dropped)

    app.starlette.router.lifespan_context = lifespan
    return app


def app_from_environment() -> app_module.ServingApp:
    """uvicorn factory for ``--workers N``: each worker rebuilds the state from the config."""
    from threadline.settings import ServeWorkerSettings

    config = ServeConfig(**json.loads(ServeWorkerSettings().serve_config))
    return create_app(build_state(config))


def config_environment(config: ServeConfig) -> dict[str, str]:
    return {CONFIG_ENV: json.dumps(asdict(config))}
