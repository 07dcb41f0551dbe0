"""``threadline render``: the Kubernetes manifests the Kubernetes runtime would apply, as YAML.

For review in a pull request, for ``kubectl diff``, or to apply with tools of one's own. Each
spec's version or alias is resolved through the control plane and pinned to its artifact
digest, exactly as the agent does before an apply; the replica count is ``replicas.min`` and
there is no canary (a canary exists only while the agent walks its steps).
"""

from __future__ import annotations

import sys
import urllib.parse
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from threadline.cli.output import errors_console
from threadline.domain import errors

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def render(
    path: Path = typer.Argument(..., help="A ModelDeployment YAML file, or a folder searched for *.yaml and *.yml."),
    environment: Optional[str] = typer.Option(None, help="Render only the deployments of this environment."),
    namespace: str = typer.Option("threadline", help="Namespace of the rendered objects."),
    image: str = typer.Option("ghcr.io/threadline/threadline:latest", help="Image that runs `threadline serve`."),
    control_plane_url: Optional[str] = typer.Option(
        None, help="URL the serving pods reach the control plane at (default: the one this command "
                   "uses, unless it is a loopback address, which a pod cannot reach)."),
    token_secret: str = typer.Option("threadline-serving-token",
                                     help="Secret (key 'token') holding the token the pods use."),
) -> None:
    """Print the Kubernetes manifests of ModelDeployment documents (multi-document YAML)."""
    from threadline.client import Client
    from threadline.gitops import documents
    from threadline.gitops import model as gitops_model
    from threadline.gitops import planner
    from threadline.gitops import render as renderer

    if path.is_dir():
        deployments, refused = documents.load_tree(path)
        for line in (line for problem in refused for line in str(problem).splitlines()):
            errors_console.print(f"[red]error:[/red] {escape(line)}", highlight=False)
        if refused:  # a partial render piped into kubectl would silently drop deployments
            raise typer.Exit(1)
    else:
        deployments = documents.load_file(path)
    chosen = [d for d in deployments if environment is None or d.metadata.environment == environment]
    manifests = []
    with Client() as client:
        url = control_plane_url or _reachable(client.url)
        for deployment in chosen:
            wanted = deployment.spec
            reference = wanted.version if wanted.version is not None else str(wanted.alias)
            found = client.get_version(wanted.model, reference)
            workload = planner.workload_of(deployment, gitops_model.Revision(
                wanted.model, int(found["version"]), str(found["artifact_digest"])))
            manifests += renderer.render(deployment, workload, image=image, namespace=namespace,
                                         control_plane_url=url, token_secret=token_secret)
    if not manifests:
        errors_console.print("no deployments to render" + (f" in environment {environment!r}" if environment else ""))
        return
    sys.stdout.write(renderer.to_yaml(manifests))


def _reachable(url: str) -> str:
    if urllib.parse.urlsplit(url).hostname in _LOOPBACK:
        raise errors.InvalidInput(f"the control plane is at {url}, which a pod cannot reach: give "
                                  "--control-plane-url (e.g. http://threadline.threadline.svc:8700)")
    return url
