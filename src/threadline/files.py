"""Atomic file writes: readers see the old file or the whole new one, never a part.

Used wherever a reader may look at any moment (artifact fetches, prediction log parts):
the bytes go to a hidden temporary beside the target, are fsynced, then renamed over it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(dest: Path, write: Callable[[BinaryIO], None]) -> int:
    """Run ``write`` into a temporary beside ``dest`` and rename it; return the size written.

    If ``write`` raises, ``dest`` is untouched and the temporary is removed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".inprogress")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return size


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (bare hex) and size of a file, read in 1 MiB chunks."""
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def create_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``, unless it exists already.

    Two processes starting at once both call this; the first one wins and the other keeps
    using what the first wrote (O_EXCL makes the creation atomic).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
