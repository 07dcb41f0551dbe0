"""Monitoring commands: ``threadline drift`` (a table with bars, or an HTML report),
``threadline feedback`` (labels), and ``threadline monitor windows|events``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
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
          as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
          html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained report with "
                                                                  "per-feature histograms to this file.")) -> None:
    """Compare a window of logged traffic with the model version's training data, per feature."""
    from threadline.client import Client

    with Client() as client:
        if html is not None:
            page = client.drift_report(deployment, window=window, start=start, end=end, environment=environment)
            html.write_text(page, encoding="utf-8")
            console.print(f"drift report written to {html}")
            return
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


def feedback(deployment: str = typer.Argument(..., help="The deployment that made the predictions."),
             labels: Path = typer.Argument(..., help="A CSV file with columns prediction_id,label, or JSON "
                                                     "lines of {\"prediction_id\": ..., \"label\": ...}."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Attach ground-truth labels to logged predictions (accuracy monitoring uses them)."""
    from threadline.client import Client

    pairs = _read_labels(labels)
    with Client() as client:
        result: dict[str, Any] = {"accepted": 0, "unknown": [], "rejected": [], "problems": []}
        for start in range(0, len(pairs), 10_000):
            part = client.feedback(deployment, pairs[start:start + 10_000])
            result["accepted"] += part["accepted"]
            for key in ("unknown", "rejected", "problems"):
                result[key] += part[key]
    if as_json:
        emit_json(result)
        return
    console.print(f"{result['accepted']} labels kept, {len(result['unknown'])} unknown prediction ids, "
                  f"{len(result['rejected'])} refused")
    for item in result["rejected"][:20]:
        console.print(f"[yellow]refused[/yellow] {item['prediction_id']}: {item['error']}", highlight=False)
    if result["unknown"]:
        console.print(f"[yellow]unknown ids[/yellow] (first 20): {', '.join(result['unknown'][:20])}")


def _read_labels(path: Path) -> list[tuple[str, Any]]:
    from threadline.domain import errors

    text = path.read_text(encoding="utf-8")
    pairs: list[tuple[str, Any]] = []
    if text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                pairs.append((str(item["prediction_id"]), item["label"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.InvalidInput(f"{path}:{number}: expected {{\"prediction_id\": ..., \"label\": ...}} "
                                          f"({exc})") from None
        return pairs
    rows = csv.DictReader(text.splitlines())
    if rows.fieldnames is None or not {"prediction_id", "label"} <= set(rows.fieldnames):
        raise errors.InvalidInput(f"{path}:1: the CSV header must name prediction_id and label")
    return [(row["prediction_id"], row["label"]) for row in rows]


monitor = typer.Typer(help="Service levels, quality and alerts of deployments.", no_args_is_help=True)


@monitor.command("windows")
def windows(deployment: str = typer.Argument(...),
            width: str = typer.Option("1h", help="Width of each window."),
            window: str = typer.Option("24h", help="The last span covered."),
            as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Latency percentiles, error rate and quality from labels, window by window."""
    from threadline.client import Client

    with Client() as client:
        result = client.windows(deployment, width=width, window=window)
    if as_json:
        emit_json(result)
        return

    def number(value: Any, pattern: str = "{:.4g}") -> str:
        return "-" if value is None else pattern.format(value)

    rows = []
    for item in result["windows"]:
        levels, quality = item["levels"], item["quality"]
        metrics = "no labels" if quality is None else ", ".join(
            f"{k} {number(v, '{:.3f}')}" for k, v in quality["metrics"].items()) + f" (n={quality['count']})"
        rows.append((item["start"][:16], levels["count"], number(levels["p50"]), number(levels["p95"]),
                     number(levels["p99"]), number(levels["error_rate"], "{:.2%}"), metrics))
    table(f"{deployment} per {width}", ("from", "requests", "p50 ms", "p95 ms", "p99 ms", "errors", "quality"),
          rows)


@monitor.command("events")
def events(deployment: str = typer.Argument(...),
           limit: int = typer.Option(50, min=1, max=1000),
           as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Alerts fired and resolved, and retraining calls, newest first."""
    from threadline.client import Client

    with Client() as client:
        items = client.events(deployment, limit=limit)
    if as_json:
        emit_json(items)
        return
    table(f"Events of {deployment}", ("time", "env", "rule", "event", "severity", "detail"),
          ((e["time"][:19], e["environment"], e["rule"], e["event"], e["severity"],
            e["details"].get("detail") or e["details"].get("reason", "")) for e in items))
