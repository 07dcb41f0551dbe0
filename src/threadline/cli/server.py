"""``threadline up``: the embedded control plane in one process."""

from __future__ import annotations

import logging
import threading

import typer

from threadline.cli.output import console


def up(host: str = typer.Option(None, help="Interface to bind (default 127.0.0.1)."),
       port: int = typer.Option(None, help="Port (default 8700)."),
       log_level: str = typer.Option("warning", help="uvicorn log level."),
       stop_workloads: bool = typer.Option(False, "--stop-workloads",
                                           help="On exit, also stop the deployments the GitOps agent runs.")) -> None:
    """Start the control plane: API and audit log on SQLite + local artifacts by default."""
    import uvicorn

    from threadline import bootstrap
    from threadline.api.app import create_app
    from threadline.registry import flavors
    from threadline.settings import Settings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    services = bootstrap.build(settings)
    token_path = bootstrap.prepare_control_plane(services)
    # Warm the model loaders (seconds of imports) while the server already answers.
    threading.Thread(target=flavors.preload, name="preload", daemon=True).start()
    if services.gitops is not None:
        services.gitops.stop_workloads_on_exit = stop_workloads
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the agent's probes are not news
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"Threadline control plane on [bold]{url}[/bold]  (dashboard: {url}/, sign in with a token; "
                  f"OpenAPI: {url}/api/v1/openapi.json)")
    console.print(f"state: {settings.resolved_home}")
    if token_path:
        console.print(f"admin token: {token_path} (mode 0600; export THREADLINE_TOKEN=$(cat {token_path}))")
    if services.gitops is not None:
        console.print(f"GitOps agent: {settings.gitops_repo} ({settings.gitops_ref}) -> "
                      f"{settings.gitops_environment} on the {settings.gitops_runtime} runtime, every "
                      f"{settings.gitops_interval:g}s")
    try:
        uvicorn.run(create_app(services), host=settings.host, port=settings.port, log_level=log_level,
                    server_header=False, access_log=False)
    finally:
        services.close()
