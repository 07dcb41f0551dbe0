"""``threadline quickstart`` as a newcomer runs it: twice in one home, interrupted with Ctrl-C
while it serves traffic and run again, with ``--fresh``, and with bad input. The end state is
read from the home through a real control plane afterwards."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support import ControlPlane, free_port
from threadline import Client

pytestmark = pytest.mark.integration

MODEL = DEPLOYMENT = "breast-cancer"
QUEUE = "breast-cancer-review"


def command(home: Path, port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "threadline", "quickstart", "--home", str(home), "--port",
            str(port), *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "80"}


def quickstart(home: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(home, port, *args), env=environment(), capture_output=True,
                          text=True, timeout=150, check=False)


def completed(home: Path, *args: str) -> str:
    done = quickstart(home, free_port(), "--no-serve", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout


def interrupt_after(home: Path, line: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Start the quickstart (serving at the end), send SIGINT once ``line`` is printed."""
    process = subprocess.Popen(command(home, free_port(), *args), env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    seen = []
    for printed in process.stdout:
        seen.append(printed)
        if line in printed:
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + out + err
    assert "interrupted" in err and "Traceback" not in out + err
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(seen) + out,
                                       err)


def serving_processes(home: Path) -> list[int]:
    """``threadline serve`` processes working for this home (the runtime sets THREADLINE_HOME)."""
    found = []
    marker = f"THREADLINE_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and b"threadline" in argv and marker in env:
            found.append(int(entry.name))
    return found


def test_runs_twice_and_after_an_interrupt_in_the_middle(tmp_path: Path) -> None:
    home = tmp_path / "qs"
    first = completed(home)
    assert f"{MODEL}@1, risk tier high\n" in first and "approved by ann and abe" in first
    assert "drifted traffic  200 predictions: texture, smoothness, symmetry" in first
    assert "normal traffic   300 predictions: no feature drifted" in first
    escalated = re.search(r"(\d+) escalated", first)
    assert escalated and int(escalated[1]) > 0 and "hash chain is intact" in first
    assert not serving_processes(home)

    second = completed(home)
    assert "registered by an earlier run" in second and "approved by an earlier run" in second
    assert "unchanged at" in second

    # Ctrl-C while the deployment serves traffic: everything stops, nothing is left listening.
    interrupted = interrupt_after(home, "✓ Syncing it through the governance check")
    assert "✓ Stopping the control plane and the serving process" in interrupted.stdout
    assert not serving_processes(home)

    completed(home)
    assert not serving_processes(home)
    plane = ControlPlane(home=home, database_url=f"sqlite:///{home / 'threadline.db'}").start()
    try:
        admin = Client(plane.url, plane.token)
        versions = admin.list_versions(MODEL)
        assert [(v["version"], v["status"]) for v in versions] == [(1, "approved:production")]
        approvals = admin.approvals(MODEL, 1)
        assert [a["actor"] for a in approvals if a["decision"] == "approve"] == ["ann", "abe"]
        assert all(a["mfa"] for a in approvals if a["decision"] == "approve")
        shown = admin.deployment(DEPLOYMENT)
        assert shown["status"] == "Synced" and shown["running"].startswith(f"{MODEL}@1 ")
        # Three complete runs, each with the same (seeded) traffic:
        assert admin.review_tasks(queue=QUEUE, status="open")["total"] >= 3 * int(escalated[1])
        assert admin.audit_verify()["ok"]
        users = {u["name"]: u["roles"] for u in admin.list_users()}
        assert {name: users[name] for name in ("dana", "ann", "abe", "rita")} == {
            "dana": ["developer"], "ann": ["approver"], "abe": ["approver"], "rita": ["reviewer"]}
    finally:
        plane.stop()


def test_fresh_starts_clean_and_never_touches_a_folder_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for args in ((), ("--fresh",)):
        done = quickstart(mine, free_port(), "--no-serve", *args)
        assert done.returncode == 1 and "is not a quickstart home" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    # A home with a registered version; --fresh empties it (it stops early too: the complete run
    # after an interrupt is the test above).
    home = tmp_path / "qs"
    before = interrupt_after(home, "risk tier high")
    assert f"{MODEL}@1, risk tier high\n" in before.stdout
    old_token = (home / "team" / "dana.token").read_text()
    (home / "leftover.txt").write_text("from before")
    again = interrupt_after(home, "risk tier high", "--fresh")
    # Registered anew, not "registered by an earlier run":
    assert f"{MODEL}@1, risk tier high\n" in again.stdout, again.stdout
    assert not (home / "leftover.txt").exists()
    assert (home / "team" / "dana.token").read_text() != old_token
    assert not serving_processes(home)


def test_a_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = quickstart(tmp_path / "qs", port, "--no-serve")
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "qs").exists()
