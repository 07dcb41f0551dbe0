"""``threadline audit verify|list|export``."""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import Optional

import orjson
import typer

from threadline.cli.output import console, emit_json, fail, table

app = typer.Typer(no_args_is_help=True, help="Verify and export the tamper-evident audit log.")


@app.command()
def verify(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Recompute the hash chain and check checkpoint signatures; exit 1 on any break."""
    from threadline.client import Client

    with Client() as client:
        result = client.audit_verify()
    if as_json:
        emit_json(result)
    elif result["ok"]:
        console.print(f"[green]OK[/green] audit chain intact: {result['entries']} entries, "
                      f"{result['checkpoints']} signed checkpoints (key {result['key_id']})")
    if not result["ok"]:
        raise fail(f"audit chain broken at entry {result['first_bad_seq']}: {result['reason']}")


ACTOR_OPTION = typer.Option(None, help="Only this actor's entries.")
ACTION_OPTION = typer.Option(None, help="Only this action; end with '.' for a family (approval.).")
OBJECT_OPTION = typer.Option(None, "--object", help="Only this object and those below it (model/iris).")


@app.command("list")
def list_entries(actor: Optional[str] = ACTOR_OPTION, action: Optional[str] = ACTION_OPTION,
                 object: Optional[str] = OBJECT_OPTION,
                 last: int = typer.Option(30, help="Show the newest N matching entries.")) -> None:
    """Show the newest matching audit entries as a table."""
    from threadline.client import Client

    with Client() as client:
        newest = deque(client.audit_entries(actor=actor, action=action, object=object), maxlen=max(1, last))
    table("Audit entries", ("seq", "time", "actor", "action", "object"),
          ((e["seq"], e["time"][:19].replace("T", " "), e["actor"], e["action"], e["object"]) for e in newest))


@app.command("export")
def export(output: Path = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
           after: int = typer.Option(0, help="Only entries after this sequence number."),
           actor: Optional[str] = ACTOR_OPTION, action: Optional[str] = ACTION_OPTION,
           object: Optional[str] = OBJECT_OPTION) -> None:
    """Write audit entries as JSON Lines, oldest first, optionally filtered."""
    from threadline.client import Client

    sink = output.open("wb") if output else sys.stdout.buffer
    count = 0
    try:
        with Client() as client:
            for entry in client.audit_entries(after=after, actor=actor, action=action, object=object):
                sink.write(orjson.dumps(entry) + b"\n")
                count += 1
    finally:
        if output:
            sink.close()
    if output:
        console.print(f"wrote {count} entries to {output}")
