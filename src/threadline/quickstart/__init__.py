"""``threadline quickstart``: the end-to-end demo on the embedded default, in a home of its own.

It does what a team does, through the same API: an admin sets up a developer, two approvers
with TOTP and a reviewer; the developer trains and registers a model with its evidence; the
approvers approve it for production; the deployment is declared in Git and synced through
the governance check to the local runtime; traffic arrives, some of it drifted and some of it
unsure; drift, the review queue and the audit log show what happened.

Modules, one job each: ``home`` (the folder and its secrets), ``plane`` (the control plane in
this process), ``team`` (users, tokens, TOTP), ``demo`` (data, model, card, traffic),
``repository`` (the deployments repository), ``steps`` (what each person does), ``progress``
and ``summary`` (the terminal), and ``flow`` (the order, and a clean stop).
"""

from threadline.quickstart.flow import run

__all__ = ["run"]
