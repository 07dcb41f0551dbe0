"""A throwaway ``threadline up`` for the benchmarks that drive a whole control plane.

Used by ``bench/_rollback.py`` and ``bench/capacity.py``: the same start-up, readiness wait and
shutdown, and the same iris model to deploy.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _procs import free_port

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class Plane:
    url: str
    token: str
    env: dict[str, str]


def wait(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)
    return found


def answers(url: str) -> bool:
    try:
        httpx.get(url + "/api/v1/whoami", timeout=1)
    except httpx.TransportError:
        return False
    return True


@contextlib.contextmanager
def control_plane(root: Path, extra_env: dict[str, str], *args: str) -> Iterator[Plane]:
    """``threadline up`` with its home under ``root``, its log in ``root/up.log``; stopped on exit."""
    port = free_port()
    env = {**os.environ, "THREADLINE_HOME": str(root / "home"), **extra_env}
    with (root / "up.log").open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "threadline", "up", "--port", str(port), *args],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            token_file = root / "home" / "admin.token"
            wait(lambda: token_file.exists() and answers(url), 60, "the control plane")
            token = token_file.read_text().strip()
            yield Plane(url, token, {**env, "THREADLINE_URL": url, "THREADLINE_TOKEN": token})
        finally:
            server.terminate()
            server.wait(timeout=60)


def iris() -> tuple[Any, Any, Any]:
    """(a fitted LogisticRegression, its feature frame, the target) on the iris data."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns=["target"])
    features.columns = COLUMNS
    return LogisticRegression(max_iter=500).fit(features, frame["target"]), features, frame["target"]
