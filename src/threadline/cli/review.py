"""``threadline review list|show|claim|resolve`` and ``threadline bundles export|import|replay|key|trust``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Optional

import orjson
import typer

from threadline.cli.output import console, emit_json, table

review = typer.Typer(help="The human review queue of escalated predictions.", no_args_is_help=True)
bundles = typer.Typer(help="Context bundles: export, import, replay, and the keys that sign them.",
                      no_args_is_help=True)


@review.command("list")
def list_tasks(queue: Optional[str] = typer.Option(None, help="One queue (default: all)."),
               status: Optional[str] = typer.Option("open", help="open, claimed or resolved; 'all' for every one."),
               limit: int = typer.Option(50, min=1, max=1000),
               as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Review tasks, oldest first."""
    from threadline.client import Client

    with Client() as client:
        result = client.review_tasks(queue=queue, status=None if status == "all" else status, limit=limit)
    if as_json:
        emit_json(result)
        return
    which = "" if status == "all" or status is None else f" {status}"
    table(f"Review queue ({result['total']}{which} in all)",
          ("bundle", "queue", "status", "assignee", "created", "decision", "label"),
          ((t["bundle_id"], t["queue"], t["status"], t["assignee"] or "-", t["created_at"][:19],
            t["decision"] or "-", "-" if t["label"] is None else t["label"]) for t in result["items"]))


@review.command("show")
def show(bundle_id: str = typer.Argument(...),
         as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """A bundle's decision chain, step by step, with its review state."""
    from threadline.client import Client

    with Client() as client:
        data = client.bundle(bundle_id)
    if as_json:
        emit_json(data)
        return
    bundle, task = data["bundle"], data["review"]
    console.print(f"[bold]{bundle['id']}[/bold]  {bundle['deployment']} ({bundle.get('environment') or '-'}) "
                  f"{bundle['model']}@{bundle['version']}  commit {(bundle.get('git_commit') or '-')[:12]}")
    console.print(f"reason: {bundle['reason']}   confidence: {bundle.get('confidence')}   trace: "
                  f"{bundle.get('trace_id')}", highlight=False)
    table("Inputs", ("name", "value"), ((k, _short(v)) for k, v in bundle["inputs"].items()))
    table("Decision chain", ("#", "step", "kind", "output"),
          ((i, s["step"], s["kind"], _short(s["output"])) for i, s in enumerate(bundle["steps"], start=1)))
    table("Outputs", ("name", "value"), ((k, _short(v)) for k, v in bundle["outputs"].items()))
    if task is not None:
        console.print(f"review: {task['status']} in queue {task['queue']}"
                      + (f", {task['assignee']}" if task["assignee"] else "")
                      + (f", {task['decision']} -> {task['label']!r}" if task["decision"] else ""))
    console.print(f"signed by key {data['key_id']} ({data['origin']})")


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


@review.command("claim")
def claim(bundle_id: str = typer.Argument(...),
          take_over: bool = typer.Option(False, "--take-over", help="Admins: take a case another reviewer holds.")
          ) -> None:
    """Take a case: one reviewer works it at a time."""
    from threadline.client import Client

    with Client() as client:
        task = client.claim(bundle_id, take_over=take_over)
    console.print(f"{bundle_id} claimed by {task['assignee']}")


@review.command("resolve")
def resolve(bundle_id: str = typer.Argument(...),
            decision: str = typer.Option(..., help="accept (the model was right) or override."),
            label: Optional[str] = typer.Option(None, help="The right answer (needed to override)."),
            comment: str = typer.Option("", help="Why, for whoever reads the case later.")) -> None:
    """Close a case; its label becomes the prediction's ground truth for accuracy monitoring."""
    from threadline.client import Client

    with Client() as client:
        task = client.resolve(bundle_id, decision, label=_number_or_text(label), comment=comment)
    console.print(f"{bundle_id} resolved: {task['decision']}, label {task['label']!r}")


def _number_or_text(value: str | None) -> Any:
    """A label typed on the command line: a number for a regressor, else the text."""
    if value is None:
        return None
    try:
        return float(value) if any(c in value for c in ".eE") else int(value)
    except ValueError:
        return value


# -- bundles ----------------------------------------------------------------------------


@bundles.command("export")
def export(bundle_id: str = typer.Argument(...), dest: Path = typer.Argument(..., help="The file to write."),
           with_model: bool = typer.Option(False, "--with-model", help="Include the model artifact, so the "
                                                                       "importer can replay without it.")) -> None:
    """Write a bundle, its signature and (optionally) its model as one portable file."""
    from threadline.bundles import document, portable
    from threadline.client import Client
    from threadline.domain import errors

    with Client() as client, tempfile.TemporaryDirectory(prefix="threadline-export-") as scratch:
        data = client.bundle(bundle_id)
        signed = document.SignedBundle(document.parse(orjson.dumps(data["bundle"])), data["signature"],
                                       data["key_id"])
        model = None
        if with_model:
            model = client.download_digest(signed.bundle.artifact_digest, Path(scratch) / "model")
        keys = client.trusted_keys()
        if signed.key_id not in keys:
            raise errors.NotFound(f"the key {signed.key_id} that signed this bundle is not known here")
        portable.export(signed, keys[signed.key_id], dest, model)
    console.print(f"bundle {bundle_id} written to {dest}" + (" with its model" if with_model else ""))


@bundles.command("import")
def import_(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Verify a bundle file (signature, every digest, archive safety) and keep it here."""
    from threadline.client import Client

    with Client() as client:
        result = client.import_bundle(path)
    state = "imported" if result["new"] else "already here"
    console.print(f"bundle {result['id']} {state} (signed by key {result['key_id']})")


@bundles.command("key")
def key(as_json: bool = typer.Option(False, "--json")) -> None:
    """This installation's public bundle key (PEM), for the installations that import its bundles."""
    from threadline.client import Client

    with Client() as client:
        data = client.bundle_key()
    if as_json:
        emit_json(data)
        return
    console.print(data["public_key"], end="", highlight=False)


@bundles.command("trust")
def trust(name: str = typer.Argument(..., help="Who the key belongs to (e.g. the other installation)."),
          pem: Path = typer.Argument(..., exists=True, dir_okay=False, help="Its public key, from `bundles key`.")
          ) -> None:
    """Accept bundles signed by another installation (admins)."""
    from threadline.client import Client

    with Client() as client:
        result = client.trust_key(name, pem.read_text())
    console.print(f"trusting key {result['key_id']} ({name}) for bundle imports")


@bundles.command("replay")
def replay(source: str = typer.Argument(..., help="A bundle id, or an exported bundle file."),
           against: Optional[str] = typer.Option(None, "--against", help="NAME@VERSION: how a candidate "
                                                                         "version would have decided."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Re-run the recorded inputs through the recorded model version, step by step; exact or not."""
    from threadline.bundles import replay as replay_module
    from threadline.client import Client

    with Client() as client, tempfile.TemporaryDirectory(prefix="threadline-replay-") as scratch:
        folder = Path(scratch)
        bundle, model_file = _load(client, source, folder)
        steps = _rerun(client, bundle, model_file, folder, bundle["model"], bundle["version"],
                       bundle["artifact_digest"], bundle["artifact_format"], bundle["signature"])
        report = replay_module.compare(bundle["steps"], steps)
        candidate = None
        if against is not None:
            candidate = _candidate(client, bundle, against, folder)
    result = {"bundle": bundle["id"], "model": f"{bundle['model']}@{bundle['version']}", "matches": report.matches,
              "summary": report.summary, "steps": [vars(step) for step in report.steps], "against": candidate}
    if as_json:
        emit_json(result)
    else:
        table(f"Replay of {bundle['id']} on {result['model']}", ("step", "kind", "exact", "detail"),
              ((s.step, s.kind, "yes" if s.matches else "NO", s.detail) for s in report.steps))
        colour = "green" if report.matches else "red"
        console.print(f"[{colour}]{report.summary}[/{colour}]")
        if candidate is not None:
            console.print(f"{against} would have decided: {candidate}", highlight=False)
    if not report.matches:
        raise typer.Exit(1)


def _load(client: Any, source: str, folder: Path) -> tuple[dict[str, Any], Path | None]:
    """The bundle (verified) and, from a file exported --with-model, its model."""
    from threadline.bundles import document, portable

    keys = client.trusted_keys()
    path = Path(source)
    if path.is_file():
        imported = portable.open_archive(path, folder, trusted_keys=keys)
        return imported.signed.bundle.model_dump(mode="json"), imported.model_path
    data = client.bundle(source)
    signed = document.SignedBundle(document.parse(orjson.dumps(data["bundle"])), data["signature"], data["key_id"])
    document.verify(signed, keys)
    return data["bundle"], None


def _rerun(client: Any, bundle: dict[str, Any], model_file: Path | None, folder: Path, model: str, version: int,
           digest: str, artifact_format: str, signature: dict[str, Any]) -> list[dict[str, Any]]:
    from threadline.bundles import rerun
    from threadline.domain import errors, models

    trusted = False
    try:
        info = client.get_version(model, version)
        trusted = bool(info["trusted"]) and str(info["artifact_digest"]).removeprefix("sha256:") == digest
    except errors.NotFound:
        info = None
    if model_file is None:
        try:
            model_file = client.download_digest(digest, folder / f"{digest}.model")
        except errors.NotFound:
            raise errors.NotFound(f"{model}@{version} (sha256:{digest[:12]}…) is not stored here: import the bundle "
                                  "exported with --with-model, or register that version") from None
    return rerun.rerun(bundle, model_file, digest=digest, signature=models.signature_from_json(signature),
                       artifact_format=artifact_format, trusted=trusted, workdir=folder,
                       label=f"{model}@{version}")


def _candidate(client: Any, bundle: dict[str, Any], against: str, folder: Path) -> str:
    from threadline.bundles import replay as replay_module
    from threadline.domain import names

    name, ref = names.version_ref(against)
    info = client.get_version(name, ref)
    digest = str(info["artifact_digest"]).removeprefix("sha256:")
    steps = _rerun(client, bundle, None, folder, name, int(info["version"]), digest, str(info["artifact_format"]),
                   info["signature"])
    final = next((step["output"] for step in reversed(steps) if step["kind"] == "predict"), {})
    return replay_module.decide(bundle["outputs"], final if isinstance(final, dict) else {"output": final})
