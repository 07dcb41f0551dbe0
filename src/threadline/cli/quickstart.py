"""``threadline quickstart``: the end-to-end demo, in a home folder of its own."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

import typer

from threadline.cli.output import console, errors_console
from threadline.settings import DEFAULT_PORT

HOME_HELP = ("The demo's own folder: its control plane's state, the team's tokens and TOTP seeds, "
             "the Git repository. A rerun reuses it.")


def quickstart(
    home: Path = typer.Option(Path("threadline-quickstart"), help=HOME_HELP),
    port: int = typer.Option(DEFAULT_PORT, min=1, max=65535,
                             help="Where the control plane and its dashboard listen."),
    fresh: bool = typer.Option(False, "--fresh",
                               help="Empty the home first (only a folder a quickstart created)."),
    no_serve: bool = typer.Option(False, "--no-serve",
                                  help="Stop everything after the summary instead of serving "
                                       "until Ctrl-C."),
) -> None:
    """Train, register, approve, deploy through Git, send traffic, and show where to look."""
    from threadline.quickstart import run

    _embedded_default_only()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run(console, home=home, port=port, fresh=fresh, serve=not no_serve)
    except KeyboardInterrupt:
        errors_console.print("interrupted: everything it started is stopped and the home is "
                             "consistent; run the same command again to carry on", highlight=False)
        raise typer.Exit(130) from None


def _embedded_default_only() -> None:
    """Forget THREADLINE_* variables: the demo runs on the embedded default in its home, and the
    serving processes it starts inherit this environment (a shell set up for a real control
    plane would otherwise send their prediction log or telemetry elsewhere)."""
    for name in [name for name in os.environ if name.startswith("THREADLINE_")]:
        del os.environ[name]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops the quickstart the way Ctrl-C does: through its clean shutdown."""
    raise KeyboardInterrupt
