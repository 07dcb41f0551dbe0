"""The artifact store in a local folder: the embedded default under ``THREADLINE_HOME``.

Blobs live at ``root/sha256/ab/<hex>``, read-only, named by their own hash, so a blob is
either absent or complete: uploads stream into ``root/tmp/`` (the same filesystem, so the
final ``os.replace`` is atomic) and the rename is fsynced before ``commit`` returns.
Temp files abandoned by a killed server are swept when the store is opened.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Iterator

from threadline.adapters.artifacts import _hashing
from threadline.domain import errors, names
from threadline.ports import ArtifactWriter, StoredArtifact

_BLOB_MODE = 0o444
# An upload idle this long belongs to a process that died: live writers touch the file.
_STALE_TEMP_SECONDS = 3600


class LocalArtifactStore(_hashing.StoreMixin):
    """Content-addressed blobs in a folder; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "sha256"
        self._tmp = self.root / "tmp"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(exist_ok=True)
        except OSError as exc:
            raise errors.ConfigurationError(
                f"cannot create the artifact store folder {self.root}: {exc.strerror}"
            ) from exc
        self._sweep_stale_temp_files()

    def writer(self, *, max_bytes: int | None = None,
               expected_digest: str | None = None) -> ArtifactWriter:
        return _hashing.HashingWriter(
            functools.partial(_hashing.FileSpool, self._tmp),
            self._publish,
            max_bytes=max_bytes,
            expected_digest=expected_digest,
        )

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def size(self, digest: str) -> int:
        path = self._path(digest)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise _not_found(path.name) from None

    def read(self, digest: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        path = self._path(digest)
        _hashing.check_chunk_size(chunk_size)
        if not path.is_file():
            raise _not_found(path.name)
        return _hashing.verified(_read_file(path, chunk_size), path.name)

    def _path(self, digest: str) -> Path:
        hexdigest = names.sha256_digest(digest)
        return self._blobs / hexdigest[:2] / hexdigest

    def _publish(self, spool: _hashing.FileSpool, stored: StoredArtifact) -> None:
        target = self._path(stored.digest)
        if target.is_file():
            return  # equal bytes are already stored: the write is idempotent
        target.parent.mkdir(exist_ok=True)
        spool.move_to(target, mode=_BLOB_MODE)
        _fsync_dir(target.parent)
        _fsync_dir(self._blobs)

    def _sweep_stale_temp_files(self) -> None:
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for entry in os.scandir(self._tmp):
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue  # another process swept it first


def _read_file(path: Path, chunk_size: int) -> Iterator[bytes]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise _not_found(path.name) from None
    with handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable: without this a crash can forget the new name."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _not_found(hexdigest: str) -> errors.NotFound:
    return errors.NotFound(f"artifact sha256:{hexdigest} is not in the store")
