"""``threadline spec schema|validate``: the ModelDeployment spec, checkable before anything is pushed.

Both run offline, without a control plane, so they fit in an editor, a pre-commit hook or CI.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from threadline.cli.output import console, emit_json, errors_console

app = typer.Typer(no_args_is_help=True, help="The ModelDeployment spec: its JSON Schema, and checking files.")


@app.command()
def schema() -> None:
    """Print the JSON Schema of a ModelDeployment document (for editors and CI)."""
    from threadline.gitops import spec

    emit_json(spec.ModelDeployment.model_json_schema(by_alias=True))


@app.command()
def validate(paths: list[Path] = typer.Argument(..., metavar="FILE...",
                                                help="YAML files, or folders to search for *.yaml and *.yml.")
             ) -> None:
    """Check ModelDeployment files; print every problem as FILE:LINE: FIELD: WHAT (exit 1 if any)."""
    from threadline.gitops import documents

    files = [found for path in paths for found in (documents.yaml_files(path) if path.is_dir() else [path])]
    deployments, refused = documents.load_files(files)
    for line in (line for problem in refused for line in str(problem).splitlines()):
        errors_console.print(f"[red]error:[/red] {escape(line)}", highlight=False)
    if refused:
        raise typer.Exit(1)
    console.print(f"OK: {len(deployments)} deployment(s) in {len(files)} file(s)")
