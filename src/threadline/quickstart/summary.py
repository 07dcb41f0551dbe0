"""The closing summary: where to look, and what the run found.

Everything shown is what the control plane answered in this run. Tokens are never printed:
the summary names the 0600 file that holds each one, and the curl reads it with ``$(cat ...)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from threadline.quickstart import demo
from threadline.quickstart.repository import DEPLOYMENT, QUEUE
from threadline.quickstart.steps import Traffic, drifted_features
from threadline.quickstart.team import DEVELOPER, MEMBERS, REVIEWER, Member


@dataclass(frozen=True)
class Summary:
    url: str
    home: Path
    admin_token: Path
    tokens: Mapping[str, Path]          # member name -> token file
    endpoint: str
    example: Mapping[str, float]        # a held-out case, for the curl
    traffic: Traffic
    normal_drift: dict[str, Any]
    shifted_drift: dict[str, Any]
    review: int                         # open tasks in the queue
    audit: dict[str, Any]
    serving: bool


def show(console: Console, summary: Summary) -> None:
    stopped = "" if summary.serving else " [dim](stopped: --no-serve)[/dim]"
    console.print()
    console.print(f"[bold]Dashboard[/bold]  {summary.url}/{stopped}", highlight=False)
    console.print("  Sign in with a token; each person's is in a file of its own:", highlight=False)
    for member in MEMBERS:
        console.print(f"  {member.name:<6} {_duty(member):<16} {summary.tokens[member.name]}",
                      highlight=False, markup=False)
    console.print(f"  {'admin':<6} {'admin':<16} {summary.admin_token}", highlight=False,
                  markup=False)
    console.print()
    console.print(f"[bold]Endpoint[/bold]   {summary.endpoint}/v2/models/{demo.MODEL}{stopped}",
                  highlight=False)
    console.print(_curl(summary), highlight=False, markup=False)
    console.print()
    _drift(console, summary)
    console.print()
    console.print(f"[bold]Review[/bold]     {_count(summary.review, 'open case')} in {QUEUE} "
                  f"({summary.traffic.escalated} from this run)", highlight=False)
    console.print(f"  threadline review list --queue {QUEUE}  (as {REVIEWER.name})",
                  highlight=False)
    audit = summary.audit
    console.print(f"[bold]Audit[/bold]      [green]OK[/green]: {audit['entries']} entries, the "
                  f"hash chain is intact ({_count(audit['checkpoints'], 'signed checkpoint')})",
                  highlight=False)
    console.print()
    if summary.serving:
        console.print("The CLI, from another terminal:", highlight=False)
        console.print(f"  export THREADLINE_URL={summary.url} "
                      f"THREADLINE_TOKEN=$(cat {summary.admin_token})",
                      highlight=False, markup=False)
    else:
        console.print("To serve it again, rerun without --no-serve (the home is reused):",
                      highlight=False)
        console.print(f"  threadline quickstart --home {summary.home}", highlight=False,
                      markup=False)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _duty(member: Member) -> str:
    return f"{member.role}, TOTP" if member.totp else member.role


def _curl(summary: Summary) -> str:
    """A ready-to-paste request for one real held-out case, one input per line."""
    inputs = demo.infer_body(summary.example)["inputs"]
    lines = ",\n".join("  " + json.dumps(tensor, separators=(",", ":")) for tensor in inputs)
    token = summary.tokens[DEVELOPER.name]
    return (f"curl -s {summary.endpoint}/v2/models/{demo.MODEL}/infer \\\n"
            f"  -H \"Authorization: Bearer $(cat {token})\" -d '{{\"inputs\": [\n{lines}]}}'")


def _drift(console: Console, summary: Summary) -> None:
    traffic, shifted = summary.traffic, summary.shifted_drift
    console.print(f"[bold]Drift[/bold]      of {DEPLOYMENT}'s traffic from its training data:",
                  highlight=False)
    for label, result, rows in (("normal traffic", summary.normal_drift, traffic.normal),
                                ("drifted traffic", shifted, traffic.drifted)):
        found = ", ".join(drifted_features(result)) or "no feature drifted"
        console.print(f"  {label:<16} {rows} predictions: {found}", highlight=False)
    test = shifted["features"][0]
    rule = "statistic is above" if test["higher_is_drift"] else "p-value is below"
    console.print(f"  {test['method']} per feature: drift when the {rule} {test['threshold']:g}",
                  highlight=False)
    console.print(f"  threadline drift {DEPLOYMENT} --window 1h --html drift.html",
                  highlight=False)
