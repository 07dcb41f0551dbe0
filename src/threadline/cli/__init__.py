"""The ``threadline`` command line: Typer commands over the SDK (HTTP only)."""
