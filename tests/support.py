"""Test helpers importable from any test module: a real control plane subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlane:
    """A real ``threadline up`` subprocess with its own home, database and port."""

    home: Path
    database_url: str
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def env(self) -> dict[str, str]:
        return {**os.environ, "THREADLINE_HOME": str(self.home), "THREADLINE_DATABASE_URL": self.database_url,
                "THREADLINE_URL": self.url, **self.extra_env}

    def cli_env(self) -> dict[str, str]:
        return {**self.env(), "THREADLINE_TOKEN": self.token}

    def start(self) -> "ControlPlane":
        log = (self.home.parent / f"server-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "threadline", "up", "--port", str(self.port), *self.extra_args],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"control plane exited early: {self.log()}")
            try:
                if (self.home / "admin.token").exists() and httpx.get(self.url + "/api/v1/models", timeout=1,
                                                                       headers=self.auth()).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"control plane did not become ready: {self.log()}")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        path = self.home.parent / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, sig: int | None = None) -> None:
        if self.process and self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "threadline", *args], env=self.cli_env(),
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"threadline {' '.join(args)} failed: {result.stdout}\n{result.stderr}")
        return result


_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
                 "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
                 "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` as a fixed test identity, whatever the machine's git config says."""
    command = ["git", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always", *args]
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **_GIT_IDENTITY}, capture_output=True,
                          text=True, timeout=30, check=True)
    return done.stdout.strip()


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "the condition") -> Any:
    """Poll ``condition`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return found


DRIFT_FEATURES = ["f0", "f1", "f2", "f3"]


def normal_frame(rows: int, seed: int, shift: dict[str, float] | None = None) -> Any:
    """Standard-normal features f0..f3, some shifted by a constant: a drift test's traffic."""
    import numpy as np
    import pandas as pd

    data = pd.DataFrame(np.random.default_rng(seed).normal(size=(rows, len(DRIFT_FEATURES))), columns=DRIFT_FEATURES)
    for name, by in (shift or {}).items():
        data[name] += by
    return data
