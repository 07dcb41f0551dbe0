"""``threadline recommend`` (right-sizing, optionally as a Git change) and ``threadline cost``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from threadline.cli.output import console, emit_json, table


def recommend(deployment: str = typer.Argument(..., help="The deployment's name."),
              environment: str = typer.Option("production", "--env", help="Its environment."),
              window: str = typer.Option("7d", help="How much measured usage to base it on."),
              write: bool = typer.Option(False, "--write", help="Edit the deployment's YAML in a checkout of the "
                                                                "GitOps repository and print the diff."),
              checkout: Path = typer.Option(Path("."), help="The checkout to edit with --write."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Right-size a deployment from its measured utilization, with the evidence, saving and risk."""
    from threadline.client import Client

    with Client() as client:
        result = client.recommendation(deployment, environment=environment, window=window)
    if as_json and not write:
        emit_json(result)
        return
    requested = result["requested"]
    table(f"Recommendation for {deployment} ({environment}), from {window} of measurements",
          ("", "requested", "recommended"),
          (("cpu per replica", _cores(requested["cpu_cores"]), result["cpu"]),
           ("memory per replica", _bytes(requested["memory_bytes"]), result["memory"]),
           ("replicas", f"{requested['replicas_min']}-{requested['replicas_max']}",
            f"{result['replicas_min']}-{result['replicas_max']}")))
    if result["gpu"]:
        console.print(f"GPU: {result['gpu']}", highlight=False)
    table("Evidence", ("measure", "value"), ((k, _show(v)) for k, v in result["evidence"].items()))
    console.print(f"expected saving: {result['saving_per_month']:.2f} per month; risk: {result['risk']}",
                  highlight=False)
    if write:
        _write(checkout, deployment, environment, result)


def _write(checkout: Path, deployment: str, environment: str, result: dict[str, Any]) -> None:
    from threadline.gitops import spec_edit

    change = spec_edit.apply(checkout, deployment, environment, spec_edit.Edit(
        cpu=result["cpu"], memory=result["memory"], replicas_min=result["replicas_min"],
        replicas_max=result["replicas_max"]))
    if not change.diff:
        console.print(f"{change.path} already asks for this: nothing to change")
        return
    spec_edit.write(change)
    console.print(change.diff, highlight=False, markup=False, end="")
    console.print(f"written to {change.path}: review it, commit and push; the agent applies it after merge")


def cost(by: str = typer.Option("deployment", help="deployment, model or team."),
         since: str = typer.Option("7d", help="The period: 24h, 7d, 30d ..."),
         spot: bool = typer.Option(False, "--spot", help="Price at spot rates."),
         csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the rows as CSV to this file."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """What each deployment, model or team costs, per 1,000 predictions, and what right-sizing would save."""
    from threadline.client import Client

    with Client() as client:
        report = client.cost(by=by, since=since, spot=spot)
        if csv is not None:
            csv.write_text(client.cost_csv(by=by, since=since, spot=spot), encoding="utf-8")
    if as_json:
        emit_json(report)
        return
    rows = report["items"]
    if not rows:
        console.print(f"no utilization measured in the last {since}: costs come from measured deployments "
                      "(the local runtime samples them while `threadline up` runs)")
        return
    currency = rows[0]["currency"]
    shown = rows + ([report["total"]] if len(rows) > 1 else [])
    table(f"Cost by {by}, last {since} ({currency})",
          (by, "replica-h", "cost", "per 1k predictions", "cpu used", "memory used", "saving/month"),
          ((r["name"] + (f" ({r['environment']})" if r.get("environment") else ""), f"{r['replica_hours']:.1f}",
            f"{r['cost']:.2f}", _money(r["cost_per_1000"]), _share(r["cpu_utilization"]),
            _share(r["memory_utilization"]), _money(r["potential_saving"])) for r in shown))
    if csv is not None:
        console.print(f"CSV written to {csv}")


def _cores(value: float) -> str:
    from threadline.capacity.recommend import cpu_text

    return cpu_text(value)


def _bytes(value: int) -> str:
    from threadline.capacity.recommend import memory_text

    return memory_text(value)


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
