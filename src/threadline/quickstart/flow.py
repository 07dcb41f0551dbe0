"""``threadline quickstart`` from start to end: the steps in order, the summary, a clean stop.

Whatever ends the run (its last step with ``--no-serve``, Ctrl-C at any point, an error), the
``finally`` stops the control plane and the serving process and releases the home, with
Ctrl-C and SIGTERM ignored while it does so: a second Ctrl-C must not leave a serving process
behind or a home half shut down. The next run then finds the home consistent.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from threadline.client import Client
from threadline.domain import errors
from threadline.quickstart import demo, repository, steps
from threadline.quickstart import plane as embedded
from threadline.quickstart.home import Home
from threadline.quickstart.progress import Progress
from threadline.quickstart.summary import Summary, show
from threadline.quickstart.team import APPROVERS, DEVELOPER, MEMBERS, REVIEWER, Team


def run(console: Console, *, home: Path, port: int, fresh: bool, serve: bool) -> None:
    listener = embedded.listen(port)  # a taken port is refused before anything changes
    try:
        opened = Home.open(home, fresh=fresh)
    except BaseException:
        listener.close()
        raise
    progress = Progress(console)
    plane = embedded.Plane(opened, listener)
    try:
        show(console, _steps(progress, opened, plane, serve))
        if serve:
            console.print(f"\nRunning until Ctrl-C: the control plane at {plane.url}",
                          highlight=False)
            try:
                plane.wait()
            except KeyboardInterrupt:
                console.print()
    finally:
        with _uninterrupted():
            if plane.started:
                with progress.step("Stopping the control plane and the serving process"):
                    plane.stop()
            else:
                plane.stop()  # only the port to let go of
            opened.close()


def _steps(progress: Progress, home: Home, plane: embedded.Plane, serve: bool) -> Summary:
    with progress.step("Starting the control plane") as step:
        repository.init(home.repository)
        plane.start()
        step.note(f"{plane.url}, its state in {home.root}")
    admin_token = home.read_secret(home.admin_token_path)
    if admin_token is None:
        raise errors.Conflict(f"{home.admin_token_path} is missing, so the demo team cannot be "
                              "set up: start over with --fresh")
    with Client(plane.url, admin_token) as admin:
        team = Team(home, plane.url, admin)
        try:
            return _team_steps(progress, home, plane, admin, team, serve)
        finally:
            team.close()


def _team_steps(progress: Progress, home: Home, plane: embedded.Plane, admin: Client, team: Team,
                serve: bool) -> Summary:
    with progress.step("Setting up the team (users, tokens, TOTP)") as step:
        team.ensure()
        approvers = " and ".join(a.name for a in APPROVERS)
        step.note(f"{DEVELOPER.name} (developer), {approvers} (approvers, TOTP), "
                  f"{REVIEWER.name} (reviewer)")
    with progress.step("Training a model on scikit-learn's breast cancer data") as step:
        trained = demo.build()
        step.note(f"logistic regression, accuracy {trained.metrics['accuracy']:.3f} on "
                  f"{len(trained.test)} held-out cases")
    dev, reviewer = team.client(DEVELOPER), team.client(REVIEWER)
    with progress.step("Registering it with its data, card and lineage") as step:
        version, registered = steps.register(dev, trained, home)
        earlier = "" if registered else " (registered by an earlier run)"
        step.note(f"{demo.MODEL}@{version}, risk tier high{earlier}")
    with progress.step("Approving it for production (2 approvers, TOTP)") as step:
        approved = steps.approve(team, version)
        step.note(f"approved by {' and '.join(approved) or 'an earlier run'}")
    with progress.step("Committing the deployment spec to Git") as step:
        commit, changed = steps.publish(home, version)
        step.note(f"{'commit' if changed else 'unchanged at'} {commit[:12]} in {home.repository}")
    with progress.step("Syncing it through the governance check") as step:
        endpoint = steps.sync(admin, version, step)
        step.note(f"{demo.MODEL}@{version} serves at {endpoint}")
    before = steps.queued(reviewer)
    with progress.step("Sending traffic: normal, then drifted") as step:
        traffic = steps.send_traffic(endpoint, team.token(DEVELOPER), trained, step)
        step.note(f"{traffic.normal} normal and {traffic.drifted} drifted cases, "
                  f"{traffic.escalated} escalated")
    with progress.step("Computing drift from the prediction log") as step:
        normal = steps.drift(dev, traffic.start, traffic.shift, traffic.normal)
        shifted = steps.drift(dev, traffic.shift, traffic.end, traffic.drifted)
        step.note(f"drifted: {', '.join(steps.drifted_features(shifted)) or 'none'}")
    with progress.step("Waiting for the escalated cases to reach review") as step:
        review = steps.review_queue(reviewer, before + traffic.escalated)
        step.note(f"{review} open in {repository.QUEUE}")
    with progress.step("Waiting for the deployment's health checks"):
        steps.healthy(admin)
    with progress.step("Signing and verifying the audit log") as step:
        admin.audit_checkpoint()
        audit = admin.audit_verify()
        if not audit["ok"]:
            raise errors.IntegrityError(f"the audit log is broken at entry "
                                        f"{audit['first_bad_seq']}: {audit['reason']}")
        step.note(f"{audit['entries']} entries, the hash chain is intact")
    example = trained.test.iloc[0][list(demo.FEATURES)].to_dict()
    return Summary(url=plane.url, home=home.root, admin_token=home.admin_token_path,
                   tokens={m.name: home.token_path(m.name) for m in MEMBERS}, endpoint=endpoint,
                   example=example, traffic=traffic, normal_drift=normal, shifted_drift=shifted,
                   review=review, audit=audit, serving=serve)


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while the run shuts down (signals go to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
