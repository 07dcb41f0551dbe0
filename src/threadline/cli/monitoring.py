"""``threadline drift``: per-feature drift of a deployment's traffic, as a table with bars."""

from __future__ import annotations

from typing import Any, Optional

import typer

from threadline.cli.output import console, emit_json, table

BAR = 20


def _bar(feature: dict[str, Any]) -> str:
    """How far the score is toward (and past) its threshold: full at twice the threshold."""
    statistic, threshold = feature["statistic"], feature["threshold"]
    if statistic is None or not threshold:
        return ""
    if feature["higher_is_drift"]:
        score = statistic / threshold
    else:  # a p-value: drift below the threshold
        score = threshold / statistic if statistic > 0 else 2.0
    filled = min(BAR, round(BAR * min(score, 2.0) / 2))
    return "█" * filled + "·" * (BAR - filled)


def drift(deployment: str = typer.Argument(..., help="The deployment name its prediction log uses."),
          window: str = typer.Option("1h", help="The last span: 30m, 1h, 24h ..."),
          start: Optional[str] = typer.Option(None, "--from", help="Window start (ISO 8601), with --to."),
          end: Optional[str] = typer.Option(None, "--to", help="Window end (ISO 8601)."),
          environment: Optional[str] = typer.Option(None, "--env", help="Where its spec's drift settings live."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Compare a window of logged traffic with the model version's training data, per feature."""
    from threadline.client import Client

    with Client() as client:
        result = client.drift(deployment, window=window, start=start, end=end, environment=environment)
    if as_json:
        emit_json(result)
        return
    verdict = "[red]drifted[/red]" if result["drifted"] else "[green]no dataset drift[/green]"
    console.print(f"{deployment}: {result['model']}@{result['version']}, {result['rows']} predictions from "
                  f"{result['from'][:19]} to {result['to'][:19]}: {verdict} ({result['drifted_share']:.0%} of "
                  f"features; the dataset drifts at {result['share_threshold']:.0%})")
    table("Drift per feature", ("feature", "kind", "method", "score", "threshold", "", "drift", "rows"),
          ((f["feature"], f["kind"], f["method"], "-" if f["statistic"] is None else f"{f['statistic']:.4g}",
            "-" if f["threshold"] is None else f"{f['threshold']:g}", _bar(f),
            "YES" if f["drifted"] else (f["detail"] or "no"), f["current_size"]) for f in result["features"]))
    for problem in result["problems"]:
        console.print(f"[yellow]skipped:[/yellow] {problem}", highlight=False)
