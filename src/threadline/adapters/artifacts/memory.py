"""An in-memory artifact store that ships in the package, for tests of the services above it.

It shares the writer and the verified read with the real stores, so it keeps the same
contract (the contract suite runs against it too), and it adds ``corrupt`` so a test can
simulate bytes that rotted on disk or were tampered with in a bucket.
"""

from __future__ import annotations

import threading
from typing import Iterator

from threadline.adapters.artifacts import _hashing
from threadline.domain import errors, names
from threadline.ports import ArtifactWriter, StoredArtifact


class MemoryArtifactStore(_hashing.StoreMixin):
    """Blobs in a dict keyed by hex digest; safe to share between threads."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def writer(self, *, max_bytes: int | None = None,
               expected_digest: str | None = None) -> ArtifactWriter:
        return _hashing.HashingWriter(
            _hashing.MemorySpool, self._publish,
            max_bytes=max_bytes, expected_digest=expected_digest,
        )

    def exists(self, digest: str) -> bool:
        hexdigest = names.sha256_digest(digest)
        with self._lock:
            return hexdigest in self._blobs

    def size(self, digest: str) -> int:
        return len(self._get(digest))

    def read(self, digest: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        _hashing.check_chunk_size(chunk_size)
        hexdigest = names.sha256_digest(digest)
        data = self._get(hexdigest)
        chunks = (data[i:i + chunk_size] for i in range(0, len(data), chunk_size))
        return _hashing.verified(chunks, hexdigest)

    def corrupt(self, digest: str) -> None:
        """Flip the bits of the first stored byte (or add one to an empty blob), for tests."""
        hexdigest = names.sha256_digest(digest)
        data = self._get(hexdigest)
        damaged = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\0"
        with self._lock:
            self._blobs[hexdigest] = damaged

    def _get(self, digest: str) -> bytes:
        hexdigest = names.sha256_digest(digest)
        with self._lock:
            data = self._blobs.get(hexdigest)
        if data is None:
            raise errors.NotFound(f"artifact sha256:{hexdigest} is not in the store")
        return data

    def _publish(self, spool: _hashing.MemorySpool, stored: StoredArtifact) -> None:
        with self._lock:
            self._blobs.setdefault(stored.digest, spool.getvalue())
