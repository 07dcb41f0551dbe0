"""``threadline models register|list|show|alias|transition|check|card``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from threadline.cli.output import console, emit_json, table
from threadline.domain import errors, names

app = typer.Typer(no_args_is_help=True, help="Register, list and inspect models and versions.")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


def _client() -> Any:
    from threadline.client import Client

    return Client()


@app.command()
def register(
    path: Path = typer.Argument(..., help="Model file (.skops, .onnx, .pkl) or MLflow model folder."),
    name: str = typer.Option(..., "--name", "-n", help="Model name."),
    flavor: Optional[str] = typer.Option(None, help="sklearn, onnx or mlflow (default: detected)."),
    training_data: Optional[Path] = typer.Option(None, help="Parquet or CSV the model was trained on."),
    target: list[str] = typer.Option([], help="Label column(s) in the training data to leave out."),
    owner: str = typer.Option("default", help="Owner team, when this creates the model."),
    risk: Optional[str] = typer.Option(None, help="Risk tier: minimal, limited, high, unacceptable."),
    metric: list[str] = typer.Option([], help="A metric as NAME=VALUE; repeat for more."),
    card: Optional[Path] = typer.Option(None, help="Model card YAML file."),
    lineage: Optional[Path] = typer.Option(None, help="Lineage YAML (code_repo, code_commit, ...)."),
    trusted: bool = typer.Option(False, help="Accept a pickle artifact (it runs code when loaded; approvers, --otp)."),
    description: str = typer.Option("", help="What this version is."),
    otp: Optional[str] = typer.Option(None, "--otp", help="A fresh TOTP code (needed with --trusted)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Upload a model artifact and register it as the next version."""
    with _client() as client, Progress("[progress.description]{task.description}", BarColumn(),
                                       DownloadColumn(), TransferSpeedColumn(), console=console,
                                       transient=True, disable=as_json) as bar:
        task = bar.add_task("uploading", total=None)
        version = client.register_model(
            path, name, flavor=flavor, training_data=training_data, card=_card(card), risk=risk,
            lineage=_yaml(lineage, "lineage"), metrics=_metrics(metric), owner=owner,
            description=description, target=target or None, trusted=trusted, otp=otp,
            progress=lambda sent, total: bar.update(task, completed=sent, total=total))
    if as_json:
        emit_json(version)
        return
    console.print(f"registered [bold]{version['model']}@{version['version']}[/bold] "
                  f"({version['flavor']}, {version['artifact_digest']})")


@app.command("list")
def list_models(query: Optional[str] = typer.Option(None, help="Substring of name or description."),
                owner: Optional[str] = typer.Option(None, help="Only this owner team."),
                as_json: bool = JSON_OPTION) -> None:
    """List models."""
    with _client() as client:
        items = client.list_models(query=query, owner=owner)
    if as_json:
        emit_json(items)
        return
    table("Models", ("name", "owner", "risk", "created", "description"),
          ((m["name"], m["owner"], m["risk_tier"], _when(m["created_at"]), m["description"][:60]) for m in items))


@app.command()
def show(ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."),
         as_json: bool = JSON_OPTION) -> None:
    """Show a model and its versions, or one version in full."""
    name, version_ref = names.version_ref(ref)
    with _client() as client:
        if "@" not in ref:
            model, versions = client.get_model(name), client.list_versions(name)
        else:
            model, versions = None, [client.get_version(name, version_ref)]
    if as_json:
        emit_json({**model, "versions": versions} if model else versions[0])
        return
    if model:
        aliases = ", ".join(f"{a}={n}" for a, n in model["aliases"].items()) or "-"
        console.print(f"[bold]{model['name']}[/bold]  owner {model['owner']}  risk {model['risk_tier']}  "
                      f"aliases {aliases}")
        table("Versions", ("version", "status", "flavor", "digest", "created by", "created"),
              ((v["version"], v["status"], v["flavor"], v["artifact_digest"][7:19], v["created_by"],
                _when(v["created_at"])) for v in versions))
        return
    _show_version(versions[0])


def _show_version(v: dict[str, Any]) -> None:
    console.print(f"[bold]{v['model']}@{v['version']}[/bold]  status {v['status']}  flavor {v['flavor']} "
                  f"({v['artifact_format']}{', trusted' if v['trusted'] else ''})")
    console.print(f"artifact {v['artifact_digest']} ({v['artifact_size']} bytes)")
    table("Inputs", ("name", "datatype", "shape"),
          ((i["name"], i["datatype"], i["shape"]) for i in v["signature"]["inputs"]))
    if v["metrics"]:
        table("Metrics", ("metric", "value"), sorted(v["metrics"].items()))
    lineage = v["lineage"]
    for ref in lineage["training_data"]:
        console.print(f"trained on {ref['uri']} ({ref['digest'] or 'no digest'})")
    if lineage["code_repo"] or lineage["code_commit"]:
        console.print(f"code {lineage['code_repo'] or '?'} @ {lineage['code_commit'] or '?'}")


@app.command()
def alias(name: str = typer.Argument(..., help="Model name."),
          alias_name: str = typer.Argument(..., metavar="ALIAS"),
          version: Optional[int] = typer.Argument(None, help="Version to point at (omit with --delete)."),
          delete: bool = typer.Option(False, "--delete", help="Remove the alias."),
          otp: Optional[str] = typer.Option(None, "--otp", help="A fresh TOTP code, for aliases the policy protects."),
          as_json: bool = JSON_OPTION) -> None:
    """Point an alias at a version (atomically), or delete it."""
    if delete == (version is not None):
        raise errors.InvalidInput("give a VERSION to set the alias, or --delete to remove it")
    with _client() as client:
        result = (client.delete_alias(name, alias_name, otp=otp) if delete
                  else client.set_alias(name, alias_name, version, otp=otp))
    if as_json:
        emit_json(result)
    elif delete:
        console.print(f"removed {name}@{alias_name} (was version {result['previous']})")
    else:
        was = f" (was {result['previous']})" if result["previous"] else ""
        console.print(f"{name}@{alias_name} -> version {version}{was}")


@app.command()
def transition(ref: str = typer.Argument(..., help="NAME@VERSION."),
               event: str = typer.Argument(..., help="validate, deprecate or archive."),
               as_json: bool = JSON_OPTION) -> None:
    """Move a version along its lifecycle (approval goes through `threadline approvals`)."""
    name, version_ref = names.version_ref(ref)
    if not str(version_ref).isdigit():
        raise errors.InvalidInput(f"{ref!r}: name a version number, e.g. {name}@3")
    with _client() as client:
        version = client.transition_version(name, int(version_ref), event)
    emit_json(version) if as_json else console.print(f"{name}@{version_ref} is now {version['status']}")


@app.command()
def check(ref: str = typer.Argument(..., help="NAME@VERSION or NAME@ALIAS."),
          environment: str = typer.Option(..., "--env", "-e", help="Environment, e.g. production."),
          as_json: bool = JSON_OPTION) -> None:
    """Evaluate every policy gate for a version in an environment; exit 1 if one fails."""
    from threadline.cli.governance import show_gates

    name, version_ref = names.version_ref(ref)
    with _client() as client:
        report = client.check(name, version_ref, environment)
    emit_json(report) if as_json else show_gates(report)
    if not report["passed"]:
        raise typer.Exit(1)


@app.command()
def card(ref: str = typer.Argument(..., help="NAME@VERSION or NAME@ALIAS."),
         format: str = typer.Option("markdown", "--format", "-f", help="markdown, html or json."),
         edit: Optional[Path] = typer.Option(None, "--edit", help="Replace the card with this YAML (owners)."),
         output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file.")) -> None:
    """Render a version's model card, or store a new revision of it from YAML."""
    from threadline.cli.governance import print_document

    name, version_ref = names.version_ref(ref)
    with _client() as client:
        if edit is not None:
            if not str(version_ref).isdigit():
                raise errors.InvalidInput(f"{ref!r}: edit a card by version number, e.g. {name}@3")
            result = client.edit_card(name, int(version_ref), _card(edit) or {})
            console.print(f"{name}@{version_ref} card revision {result['revision']} stored")
            return
        print_document(client.get_card(name, version_ref, format=format), output)


def _card(path: Path | None) -> dict[str, Any] | None:
    """A model card file, checked here so its errors name the file and line."""
    from threadline.governance import cards

    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(f"cannot read card file {path}: {exc}") from None
    return cards.load_card_yaml(text, str(path)).model_dump(mode="json", exclude_defaults=True)


def _when(timestamp: str) -> str:
    """``2026-11-28T11:43:23.1+00:00`` -> ``2026-11-28 11:43``: enough to tell versions apart."""
    return timestamp[:16].replace("T", " ")


def _metrics(items: list[str]) -> dict[str, float]:
    metrics = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            metrics[key] = float(value)
        except ValueError:
            raise errors.InvalidInput(f"--metric {item!r}: use NAME=NUMBER") from None
        if not sep or not key:
            raise errors.InvalidInput(f"--metric {item!r}: use NAME=NUMBER")
    return metrics


def _yaml(path: Path | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise errors.InvalidInput(f"cannot read {what} file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise errors.InvalidInput(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise errors.InvalidInput(f"{path}:1: the {what} must be a YAML mapping")
    return data
