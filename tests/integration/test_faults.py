"""Crashes and concurrency against a real control plane: stores stay consistent.

- a client SIGKILLed mid-upload leaves no blob, no temp file, no row;
- a server SIGKILLed while registrations are in flight leaves no version without its audit
  entry and no gap, and the next registration works;
- eight processes registering versions of one model at once get versions 1..8.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import skops.io

from support import ControlPlane
from threadline import Client
from threadline.domain import errors

pytestmark = pytest.mark.integration


def _model_file(model: object, folder: Path) -> Path:
    path = folder / "model.skops"
    skops.io.dump(model, path)
    return path


def _blobs(plane: ControlPlane) -> set[Path]:
    return set((plane.home / "artifacts" / "sha256").rglob("*"))


def _assert_consistent(plane: ControlPlane, model: str) -> list[int]:
    """Versions are 1..n, each with exactly one version.register entry, and the chain verifies."""
    with Client(plane.url, plane.token) as c:
        try:
            versions = [v["version"] for v in c.list_versions(model)]
        except errors.NotFound:
            versions = []
        entries = list(c.audit_entries())
        result = c.audit_verify()
    assert result["ok"], result
    registered = [e["object"] for e in entries if e["action"] == "version.register"
                  and e["object"].startswith(f"model/{model}/")]
    assert versions == list(range(1, len(versions) + 1))
    assert sorted(registered) == sorted(f"model/{model}/version/{v}" for v in versions)
    return versions


SLOW_UPLOAD = textwrap.dedent("""
    import sys, time, httpx
    url, token = sys.argv[1], sys.argv[2]
    def body():
        for _ in range(10_000):
            yield b"x" * 65536
            time.sleep(0.01)
    httpx.post(url + "/api/v1/artifacts", content=body(), timeout=600,
               headers={"Authorization": "Bearer " + token, "content-length": str(10_000 * 65536)})
""")


def test_client_killed_mid_upload_leaves_nothing(control_plane: ControlPlane, tmp_path: Path,
                                                 iris_model: tuple[object, object]) -> None:
    blobs_before = _blobs(control_plane)
    uploader = subprocess.Popen([sys.executable, "-c", SLOW_UPLOAD, control_plane.url, control_plane.token])
    temp = control_plane.home / "artifacts" / "tmp"
    deadline = time.monotonic() + 30
    while not any(p.stat().st_size > 1 << 20 for p in temp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(temp.iterdir()), "the upload never started streaming"
    uploader.send_signal(signal.SIGKILL)
    uploader.wait()
    deadline = time.monotonic() + 30
    while any(temp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(temp.iterdir()) == [], "the partial upload was not discarded"
    assert _blobs(control_plane) == blobs_before
    with Client(control_plane.url, control_plane.token) as c:
        assert c.register_model(_model_file(iris_model[0], tmp_path), "after-kill", owner="t")["version"] == 1
    _assert_consistent(control_plane, "after-kill")


def test_server_killed_mid_registration_stays_consistent(control_plane: ControlPlane, tmp_path: Path,
                                                         iris_model: tuple[object, object]) -> None:
    model, features = iris_model
    path = _model_file(model, tmp_path)
    with Client(control_plane.url, control_plane.token) as c:
        c.register_model(path, "crash", owner="t", training_data=features)
    stop = threading.Event()

    def hammer() -> None:
        with Client(control_plane.url, control_plane.token, timeout=10) as c:
            while not stop.is_set():
                try:
                    c.register_model(path, "crash", training_data=features)
                except errors.ThreadlineError:
                    return  # the server is gone

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(2.5)
    control_plane.stop(signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join()
    control_plane.start()
    before = _assert_consistent(control_plane, "crash")
    assert len(before) >= 2, "no registration completed before the kill"
    with Client(control_plane.url, control_plane.token) as c:
        assert c.register_model(path, "crash", training_data=features)["version"] == len(before) + 1
    _assert_consistent(control_plane, "crash")


REGISTER_ONE = textwrap.dedent("""
    import sys
    from threadline import Client
    url, token, path = sys.argv[1:4]
    with Client(url, token) as c:
        print(c.register_model(path, "parallel", owner="t")["version"])
""")


def test_eight_processes_register_without_gaps(control_plane: ControlPlane, tmp_path: Path,
                                               iris_model: tuple[object, object]) -> None:
    path = _model_file(iris_model[0], tmp_path)
    processes = [subprocess.Popen([sys.executable, "-c", REGISTER_ONE, control_plane.url, control_plane.token,
                                   str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(8)]
    outputs = [p.communicate(timeout=180) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert sorted(int(out) for out, _ in outputs) == list(range(1, 9))
    assert _assert_consistent(control_plane, "parallel") == list(range(1, 9))
