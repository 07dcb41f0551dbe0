"""The deployments repository: where the platform team declares what runs, the GitOps way.

A plain Git repository in the home with one ModelDeployment per file on branch ``main``; the
embedded agent pulls it like any remote. Commits use a fixed identity and none of the user's
Git configuration (hooks, signing, templates), so the demo behaves the same on every machine.
Publishing is idempotent: an unchanged spec makes no commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from threadline.domain import errors
from threadline.quickstart.demo import ESCALATE_BELOW, MODEL, TEAM

DEPLOYMENT = "breast-cancer"
ENVIRONMENT = "production"
QUEUE = "breast-cancer-review"
SPEC_FILE = f"{DEPLOYMENT}.yaml"

_IDENTITY = {"GIT_AUTHOR_NAME": "dana", "GIT_AUTHOR_EMAIL": "dana@quickstart.invalid",
             "GIT_COMMITTER_NAME": "dana", "GIT_COMMITTER_EMAIL": "dana@quickstart.invalid",
             "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
             "GIT_TERMINAL_PROMPT": "0"}


def spec(version: int) -> str:
    """The deployment of ``version``: one replica, drift monitoring and human review of unsure
    predictions (the ``high`` tier's production gate needs both), and selfHeal, so that a rerun
    restores the serving process the previous run stopped.

    Health checks are quick (a 10 s window) but spaced wider than the agent's passes: a run
    stopped inside the window of a first deploy leaves the checks running with nothing to
    check, and the next run's agent restores the process in a pass where no check is due,
    before failed checks ("0 of 1 replicas ready") could add up to the threshold."""
    return (f"apiVersion: threadline/v1\n"
            f"kind: ModelDeployment\n"
            f"metadata: {{name: {DEPLOYMENT}, environment: {ENVIRONMENT}, owner: {TEAM}}}\n"
            f"spec:\n"
            f"  model: {MODEL}\n"
            f"  version: {version}\n"
            f"  replicas: {{min: 1, max: 1}}\n"
            f"  resources: {{cpu: \"500m\", memory: 512Mi}}\n"
            f"  health: {{period: 5s, window: 10s, failureThreshold: 5}}\n"
            f"  monitoring:\n"
            f"    drift: {{window: 1h}}\n"
            f"  escalation: {{confidenceBelow: {ESCALATE_BELOW}, queue: {QUEUE}}}\n"
            f"  selfHeal: true\n")


def init(path: Path) -> None:
    """An empty repository with a first commit on main, so the agent has a ref to follow."""
    if shutil.which("git") is None:
        raise errors.ConfigurationError("git is not installed: the GitOps agent needs it")
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").is_dir():
        _git(path, "init", "-q", "-b", "main")
    if _git(path, "rev-parse", "--verify", "-q", "HEAD", check=False) == "":
        _git(path, "commit", "-q", "--allow-empty", "-m", "Deployments of the oncology ML team")


def publish(path: Path, text: str, message: str) -> tuple[str, bool]:
    """Commit ``text`` as the deployment's spec; the commit id, and whether a commit was made."""
    (path / SPEC_FILE).write_text(text)
    _git(path, "add", SPEC_FILE)
    changed = _git(path, "status", "--porcelain", "--", SPEC_FILE) != ""
    if changed:
        _git(path, "commit", "-q", "-m", message)
    return _git(path, "rev-parse", "HEAD"), changed


def _git(path: Path, *args: str, check: bool = True) -> str:
    # A run killed while git ran leaves its lock behind; this home is locked to this run, so
    # any lock found before a command is such a leftover.
    (path / ".git" / "index.lock").unlink(missing_ok=True)
    done = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null",
                           *args], cwd=path, env={**os.environ, **_IDENTITY}, capture_output=True,
                          text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise errors.ConfigurationError(f"git {args[0]} failed in {path}: "
                                        f"{lines[-1] if lines else done.returncode}")
    return done.stdout.strip() if done.returncode == 0 else ""
