"""Entry point: ``threadline`` and ``python -m threadline``.

Domain errors become one red line and exit code 1; nobody sees a traceback for bad input.
"""

from __future__ import annotations

import typer

from threadline.cli import (audit, capacity, db, gitops, governance, identity, models, monitoring, quickstart,
                            render, review, serve, server, spec)
from threadline.cli.output import fail
from threadline.domain import errors

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Threadline: a governed model deployment control plane.")
app.command("up")(server.up)
app.command("quickstart")(quickstart.quickstart)
app.command("serve")(serve.serve)
app.add_typer(models.app, name="models")
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.add_typer(spec.app, name="spec")
app.add_typer(identity.users, name="users")
app.add_typer(identity.tokens, name="tokens")
app.add_typer(identity.mfa, name="mfa")
app.add_typer(governance.policy, name="policy")
app.add_typer(governance.approvals, name="approvals")
app.command("compliance")(governance.compliance)
app.add_typer(governance.readiness, name="readiness")
app.command("sync")(gitops.sync)
app.command("agent")(gitops.agent)
app.command("render")(render.render)
app.command("drift")(monitoring.drift)
app.command("feedback")(monitoring.feedback)
app.add_typer(monitoring.monitor, name="monitor")
app.add_typer(review.review, name="review")
app.add_typer(review.bundles, name="bundles")
app.command("recommend")(capacity.recommend)
app.command("cost")(capacity.cost)
app.add_typer(gitops.deployments, name="deployments")


def run() -> None:
    try:
        app()
    except errors.ThreadlineError as exc:
        fail(str(exc))
        raise SystemExit(1) from None
