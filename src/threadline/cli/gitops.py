"""``threadline sync``, ``threadline deployments`` and ``threadline agent``."""

from __future__ import annotations

import signal
import threading
from typing import Any, Optional

import typer

from threadline.cli.output import console, emit_json, fail, table

deployments = typer.Typer(no_args_is_help=True, help="Deployments the GitOps agent manages.")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


def _client() -> Any:
    from threadline.client import Client

    return Client()


def show_plan(result: dict[str, Any]) -> None:
    title = f"{'Plan' if result['dry_run'] else 'Pass'} at {result['commit'][:12]}"
    table(title, ("action", "deployment", "status", "what", "reason"),
          ((a["kind"], f"{a['environment']}/{a['deployment']}", a["status"], a["workload"] or "",
            a["reason"] + "".join(f"\n  - {d}" for d in a["differences"])) for a in result["actions"]))
    for problem in result["problems"]:
        console.print(f"[yellow]not loaded:[/yellow] {problem}", highlight=False)
    for failure in result["failures"]:
        console.print(f"[red]failed:[/red] {failure}", highlight=False)


def sync(dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan a real pass would execute."),
         as_json: bool = JSON_OPTION) -> None:
    """Run a GitOps pass now on the control plane's agent (or only show its plan)."""
    with _client() as client:
        result = client.sync(dry_run=dry_run)
    if as_json:
        emit_json(result)
        return
    show_plan(result)
    if result["failures"]:
        raise typer.Exit(1)


@deployments.command("list")
def list_deployments(environment: Optional[str] = typer.Option(None, "--env", "-e"), as_json: bool = JSON_OPTION) -> None:
    with _client() as client:
        items = client.deployments(environment)
    if as_json:
        emit_json(items)
        return
    table("Deployments", ("environment", "name", "status", "running", "reason"),
          ((d["environment"], d["name"], d["status"], d["running"] or "", d["reason"]) for d in items))


@deployments.command("show")
def show_deployment(name: str = typer.Argument(...), environment: str = typer.Option("production", "--env", "-e"),
                    as_json: bool = JSON_OPTION) -> None:
    """A deployment's condition and its history, with the evidence behind each decision."""
    with _client() as client:
        found = client.deployment(name, environment)
    if as_json:
        emit_json(found)
        return
    console.print(f"[bold]{environment}/{name}[/bold]  {found['status']}: {found['reason']}", highlight=False)
    console.print(f"running {found['running'] or '-'}; last healthy {found['healthy'] or '-'}; "
                  f"commit {found['commit'][:12]}", highlight=False)
    if found["endpoints"]:
        console.print(f"endpoints {', '.join(found['endpoints'])}", highlight=False)
    usage = found.get("utilization")
    if usage:
        gpu = "no GPU data" if usage["gpu_utilization"] is None else f"GPU {usage['gpu_utilization']:.0%}"
        console.print(f"last hour, per replica ({usage['replicas']} seen): CPU {usage['cpu_cores_used']:.3g} of "
                      f"{usage['cpu_cores_requested']:g} cores ({usage['cpu_utilization']:.0%}), memory "
                      f"{usage['memory_bytes_used'] / 2**20:.0f} of {usage['memory_bytes_requested'] / 2**20:.0f} MiB "
                      f"({usage['memory_utilization']:.0%}), {gpu}", highlight=False)
    for difference in found["differences"]:
        console.print(f"  differs: {difference}", highlight=False)
    table("History", ("time", "commit", "action", "outcome", "reason", "evidence"),
          ((h["time"][:19].replace("T", " "), h["commit"][:8], h["action"], h["outcome"], h["reason"],
            _evidence(h["evidence"])) for h in found["history"]))


def _evidence(evidence: dict[str, Any]) -> str:
    values = evidence.get("values") or {}
    shown = {k: v for k, v in values.items() if v is not None and k in (
        "requests", "errors", "error_rate", "p99_ms", "ready", "stable_error_rate")}
    gates = evidence.get("gates")
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()) or \
        ("; ".join(gates) if gates else "")


def agent(repo: str = typer.Option(..., help="Git repository: a path, file://, https:// or ssh:// URL."),
          ref: str = typer.Option("main", help="Branch, tag or commit to follow."),
          environment: str = typer.Option("production", help="The environment this agent deploys."),
          runtime: str = typer.Option("local", help="local or kubernetes."),
          interval: float = typer.Option(30.0, min=0.5, help="Seconds between passes."),
          stop_workloads: bool = typer.Option(False, "--stop-workloads", help="On exit, stop what it runs.")) -> None:
    """Run the pull-based GitOps agent against the metadata store, without the API.

    The local runtime's serve processes need the control plane (`threadline up`) to fetch
    artifacts; with `threadline up` and THREADLINE_GITOPS_REPO the agent runs embedded instead.
    """
    from threadline import bootstrap
    from threadline.settings import Settings

    settings = Settings(gitops_repo=repo, gitops_ref=ref, gitops_environment=environment,
                        gitops_runtime=runtime, gitops_interval=interval)  # type: ignore[arg-type]
    services = bootstrap.build(settings)
    loop = bootstrap.gitops_agent(services)
    if loop is None:
        raise fail("no repository given")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    console.print(f"GitOps agent: {repo} ({ref}) -> {environment} on the {runtime} runtime, every {interval:g}s")
    loop.start()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        loop.stop(stop_workloads=stop_workloads)
        services.close()
