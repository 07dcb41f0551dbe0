"""The streaming write and verified read that every artifact store shares.

Refusing oversize uploads, checking an expected digest, discarding on error and verifying
bytes on the way out must behave identically in every backend, or the contract suite
would pass for one store and not another. So this module owns all of it; a backend only
chooses where the bytes wait (a ``FileSpool`` on disk, a ``MemorySpool``) and how a sealed
spool is published under its digest (a rename, an upload, a dict insert).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Generic, Iterable, Iterator, Protocol, TypeVar

from threadline import files
from threadline.domain import errors, names
from threadline.ports import ArtifactStore, ArtifactWriter, StoredArtifact


class Spool(Protocol):
    """Where the bytes of an unfinished write wait until they are published."""

    def write(self, chunk: bytes) -> None: ...

    def seal(self) -> None:
        """No more writes; make what was written durable."""

    def discard(self) -> None:
        """Drop whatever is left; safe to call twice and after a publish."""


S = TypeVar("S", bound=Spool)


class FileSpool:
    """A temp file in ``directory``; keep that on the blobs' filesystem so a rename publishes."""

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
        self._file = os.fdopen(fd, "wb")
        self.path: Path | None = Path(name)

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def seal(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def move_to(self, target: Path, *, mode: int) -> None:
        """Rename the sealed file onto ``target`` atomically; the spool no longer owns it."""
        if self.path is None:
            raise errors.Conflict("the upload was already moved or discarded")
        os.chmod(self.path, mode)
        os.replace(self.path, target)
        self.path = None

    def discard(self) -> None:
        self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class MemorySpool:
    """Bytes held in memory: for the in-memory fake only."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()

    def write(self, chunk: bytes) -> None:
        self._buffer.write(chunk)

    def seal(self) -> None:
        """Nothing to make durable in memory."""

    def getvalue(self) -> bytes:
        return self._buffer.getvalue()

    def discard(self) -> None:
        self._buffer = io.BytesIO()


class HashingWriter(Generic[S]):
    """An ArtifactWriter: hashes and counts each chunk into a spool, publishes on commit."""

    def __init__(
        self,
        open_spool: Callable[[], S],
        publish: Callable[[S, StoredArtifact], None],
        *,
        max_bytes: int | None = None,
        expected_digest: str | None = None,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise errors.InvalidInput(f"must be zero or more, not {max_bytes}", field="max_bytes")
        self._expected = (
            None if expected_digest is None
            else names.sha256_digest(expected_digest, field="expected_digest")
        )
        self._spool = open_spool()
        self._publish = publish
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._closed = False
        self._result: StoredArtifact | None = None

    def write(self, chunk: bytes) -> None:
        self._require_open("write to")
        size = memoryview(chunk).nbytes
        if self._max_bytes is not None and self._size + size > self._max_bytes:
            self.abort()
            raise errors.PayloadTooLarge(
                f"exceeds the limit of {self._max_bytes} bytes", field="artifact"
            )
        self._hash.update(chunk)
        self._spool.write(chunk)
        self._size += size

    def commit(self) -> StoredArtifact:
        if self._result is not None:
            return self._result
        self._require_open("commit")
        stored = StoredArtifact(digest=self._hash.hexdigest(), size=self._size)
        try:
            if self._expected is not None and stored.digest != self._expected:
                raise errors.InvalidInput(
                    f"the bytes hash to sha256:{stored.digest}, not the expected "
                    f"sha256:{self._expected}",
                    field="expected_digest",
                )
            self._spool.seal()
            self._publish(self._spool, stored)
        finally:
            self.abort()
        self._result = stored
        return stored

    def abort(self) -> None:
        self._closed = True
        self._spool.discard()

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()

    def _require_open(self, action: str) -> None:
        if self._closed:
            raise errors.Conflict(
                f"cannot {action} an artifact writer that was committed or aborted"
            )


def verified(chunks: Iterable[bytes], digest: str) -> Iterator[bytes]:
    """Pass ``chunks`` through, then raise DigestMismatch unless they hashed to ``digest``."""
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk
    actual = hasher.hexdigest()
    if actual != digest:
        raise errors.DigestMismatch(digest, actual)


def write_atomically(chunks: Iterable[bytes], dest: Path) -> Path:
    """Write ``chunks`` beside ``dest`` and rename; if iterating raises, ``dest`` never appears."""
    dest = Path(dest)

    def write(out: BinaryIO) -> None:
        for chunk in chunks:
            out.write(chunk)

    files.atomic_write(dest, write)
    return dest


def check_chunk_size(chunk_size: int) -> None:
    """Validate a read's chunk size (a zero size would loop forever on some streams)."""
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise errors.InvalidInput(f"must be a positive integer, not {chunk_size!r}",
                                  field="chunk_size")


class StoreMixin:
    """``put`` and ``fetch``, written once over a store's own ``writer`` and ``read``."""

    def put(self: ArtifactStore, chunks: Iterable[bytes], *, max_bytes: int | None = None,
            expected_digest: str | None = None) -> StoredArtifact:
        with self.writer(max_bytes=max_bytes, expected_digest=expected_digest) as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def fetch(self: ArtifactStore, digest: str, dest: Path) -> Path:
        return write_atomically(self.read(digest), dest)
