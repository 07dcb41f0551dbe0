"""The quickstart's home folder: the demo's whole state, kept apart from the user's ``.threadline``.

The folder is the embedded control plane's ``THREADLINE_HOME`` (database, artifacts, keys,
prediction log, runtime state) and also holds what the demo team's people would keep for
themselves: their tokens and TOTP seeds (0600 files standing in for a password manager and an
authenticator app), the training data, and the deployments repository.

A marker file, written before anything else, says the folder belongs to the quickstart: a
rerun reuses only such a folder, and ``--fresh`` empties only such a folder, so pointing
``--home`` at a folder of one's own by mistake can never fill or delete it. An exclusive lock
keeps two quickstarts out of one home (both would supervise the same serving processes).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from threadline import files
from threadline.domain import errors

MARKER = "threadline-quickstart.json"
LOCK = "quickstart.lock"


class Home:
    """An opened (locked) quickstart home; ``close`` releases the lock."""

    def __init__(self, root: Path, lock_fd: int) -> None:
        self.root = root
        self._lock_fd: int | None = lock_fd

    @classmethod
    def open(cls, root: Path, *, fresh: bool) -> Home:
        """Create, reuse or (``fresh``) empty the home at ``root``, and lock it.

        Refuses a file, and a non-empty folder without the marker, before changing anything.
        """
        root = root.expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise errors.InvalidInput(f"{root} is a file: give --home a folder for the quickstart")
        # (A lone lock file is a run stopped before it wrote the marker.)
        if root.is_dir() and not (root / MARKER).is_file() and any(
                entry.name != LOCK for entry in root.iterdir()):
            raise errors.Conflict(
                f"{root} is not a quickstart home (it has no {MARKER}) and is not empty: the "
                "quickstart never fills or deletes a folder it did not create; give --home a new "
                "folder")
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        home = cls(root, _lock(root / LOCK))
        try:
            if fresh:
                home._empty()
            if fresh or not (root / MARKER).is_file():
                home.write_json(root / MARKER, {"kind": "threadline-quickstart",
                                                "created_at": datetime.now(UTC).isoformat()})
        except BaseException:
            home.close()
            raise
        return home

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # -- where things live -------------------------------------------------------------

    @property
    def admin_token_path(self) -> Path:
        """Where ``bootstrap.write_admin_token`` puts the admin's token (as ``threadline up``)."""
        return self.root / "admin.token"

    def token_path(self, user: str) -> Path:
        return self.root / "team" / f"{user}.token"

    def totp_path(self, user: str) -> Path:
        return self.root / "team" / f"{user}.totp.json"

    @property
    def training_data(self) -> Path:
        return self.root / "data" / "train.parquet"

    @property
    def repository(self) -> Path:
        """The Git repository of deployment specs the embedded GitOps agent follows."""
        return self.root / "deployments"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / "control-plane.log"

    # -- secrets, as people keep them ----------------------------------------------------

    def read_secret(self, path: Path) -> str | None:
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def write_secret(self, path: Path, text: str) -> None:
        """Write atomically with mode 0600: an interrupted write leaves the old file or none."""
        files.atomic_write(path, lambda out: out.write(text.encode() + b"\n"))

    def read_json(self, path: Path) -> dict[str, Any] | None:
        text = self.read_secret(path)
        return None if text is None else dict(json.loads(text))

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        self.write_secret(path, json.dumps(data, indent=1, sort_keys=True))

    def _empty(self) -> None:
        """Delete everything but the lock (held) and the marker (rewritten after): an interrupted
        ``--fresh`` leaves a folder that is still recognised as a quickstart home."""
        for entry in self.root.iterdir():
            if entry.name in (LOCK, MARKER):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise errors.Conflict(f"another quickstart is running in {path.parent}: stop it (Ctrl-C) "
                              "first, or give this one another --home") from None
    return fd
