"""``threadline serve``: the Open Inference Protocol v2 data plane for registered versions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from threadline.cli.output import console
from threadline.domain import errors


def serve(
    model: list[str] = typer.Option([], "--model", "-m",
                                    help="NAME@VERSION or NAME@ALIAS, optionally =WEIGHT for a traffic split "
                                         "(e.g. -m fraud@7=90 -m fraud@8=10); repeat for more."),
    deployment: Optional[Path] = typer.Option(None, help="A ModelDeployment YAML file: serve its model "
                                                         "version with its serving and escalation settings "
                                                         "(they take precedence over the options below)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8080, help="Port."),
    workers: int = typer.Option(1, min=1, help="Processes sharing the port."),
    deployment_name: Optional[str] = typer.Option(None, help="Deployment name in the prediction log "
                                                             "(default: the first model)."),
    max_batch_rows: int = typer.Option(64, min=1, help="Largest micro-batch, in rows."),
    max_wait_ms: float = typer.Option(0.0, min=0, help="Extra wait for a batch that is already forming."),
    rate_limit: float = typer.Option(0.0, min=0, help="Requests per second per token (0: unlimited)."),
    rate_burst: int = typer.Option(100, min=1, help="Burst size of the per-token rate limit."),
    max_body_bytes: int = typer.Option(8 << 20, min=1, help="Largest request body (413 beyond)."),
    escalate_rule: list[str] = typer.Option([], "--escalate-rule", help="Always escalate where this holds: "
                                            "NAME OP VALUE, e.g. \"label == fraud\" (repeatable)."),
    escalate_below: Optional[float] = typer.Option(None, min=0, max=1,
                                                   help="Mark predictions whose confidence is below this."),
    queue: Optional[str] = typer.Option(None, help="Review queue of escalated predictions (default: the "
                                                   "deployment spec's, or the control plane's default)."),
    token_file: Optional[Path] = typer.Option(None, help="Standalone: a 0600 file of accepted tokens, one "
                                                         "per line (default: ask the control plane)."),
    log_dir: Optional[str] = typer.Option(None, help="Prediction log folder or s3://BUCKET/PREFIX (default: "
                                                     "THREADLINE_PREDICTION_LOG_URL, else <home>/predictions)."),
    flush_interval: float = typer.Option(0.25, min=0.05, help="Seconds between prediction log flushes "
                                                               "(a SIGKILL loses at most this much)."),
    tls_cert: Optional[Path] = typer.Option(None, help="TLS certificate (PEM) to serve HTTPS."),
    tls_key: Optional[Path] = typer.Option(None, help="TLS private key (PEM)."),
) -> None:
    """Serve registered model versions over the Open Inference Protocol v2."""
    import os

    import uvicorn

    from threadline.client import Client
    from threadline.serving import server
    from threadline.settings import ClientSettings, Settings, TelemetrySettings

    with Client() as probe:  # finds the control plane and token the way every command does
        url, token = probe.url, probe.token
    if deployment is not None:
        if model:
            raise errors.InvalidInput("give either --deployment FILE or --model, not both")
        from threadline.gitops import documents

        spec = server.from_deployment(documents.load_file(deployment), deployment)
        model, deployment_name = spec.models, deployment_name or spec.name
        max_batch_rows, max_wait_ms, rate_limit, rate_burst = spec.batching
        escalate_below = spec.escalate_below if escalate_below is None else escalate_below
        queue = queue or spec.escalation_queue
        escalate_rule = escalate_rule or spec.escalate_rules
    if not model:
        raise errors.InvalidInput("nothing to serve: give --model NAME@VERSION (repeatable) or --deployment FILE")
    config = server.ServeConfig(
        models=model, control_plane=url, token=token, home=str(ClientSettings().home.expanduser().resolve()),
        deployment=deployment_name, token_file=str(token_file) if token_file else None,
        log_dir=log_dir or Settings().prediction_log_url, max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms,
        rate_limit=rate_limit, rate_burst=rate_burst, max_body_bytes=max_body_bytes,
        escalate_below=escalate_below, escalate_rules=escalate_rule, escalation_queue=queue,
        flush_interval=flush_interval,
        otlp_endpoint=TelemetrySettings().otel_exporter_otlp_endpoint, s3_endpoint_url=Settings().s3_endpoint_url)
    if (tls_cert is None) != (tls_key is None):
        raise errors.InvalidInput("HTTPS needs both --tls-cert and --tls-key")
    tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert and tls_key else {}
    scheme = "https" if tls else "http"
    common = dict(host=host, port=port, log_level="warning", access_log=False, server_header=False, **tls)
    if workers == 1:
        state = server.build_state(config, progress=lambda message: console.print(message))
        console.print(f"serving on {scheme}://{host}:{port}/v2 ({', '.join(state.models)}); ready")
        uvicorn.run(server.create_app(state), **common)
        return
    os.environ.update(server.config_environment(config))
    console.print(f"serving on {scheme}://{host}:{port}/v2 with {workers} workers")
    uvicorn.run("threadline.serving.server:app_from_environment", factory=True, workers=workers, **common)
