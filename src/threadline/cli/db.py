"""``threadline db upgrade``: apply metadata schema migrations (also done on every start)."""

from __future__ import annotations

import typer

from threadline.cli.output import console

app = typer.Typer(no_args_is_help=True, help="Metadata database maintenance.")


@app.command()
def upgrade() -> None:
    """Migrate the metadata database named by THREADLINE_DATABASE_URL to the newest schema."""
    from threadline.adapters.sql import engine, migrate
    from threadline.settings import Settings

    settings = Settings()
    settings.resolved_home.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    db = engine.create(url)
    try:
        migrate.upgrade(db)
        console.print(f"{engine.redact(url)} is at schema revision {migrate.current(db)}")
    finally:
        db.dispose()
