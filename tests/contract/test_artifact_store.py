"""One contract for every ArtifactStore: local folder, S3 (against a moto server) and memory.

Each backend comes with the few things a test needs to see behind the Protocol: how to
rot a stored blob, which digests are stored, and which temp files an unfinished write
left behind. A few adapter-specific checks follow the contract at the end.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from threadline.adapters.artifacts.local import LocalArtifactStore
from threadline.adapters.artifacts.memory import MemoryArtifactStore
from threadline.adapters.artifacts.s3 import S3ArtifactStore
from threadline.domain import errors
from threadline.ports import ArtifactStore, StoredArtifact

BUCKET = "threadline-test"
MiB = 1 << 20


@dataclass
class Backend:
    store: ArtifactStore
    corrupt: Callable[[str], None]
    stored: Callable[[], list[str]]
    temp_files: Callable[[], list[Path]]
    spools_to_disk: bool


def _local(tmp_path: Path) -> Backend:
    root = tmp_path / "store"
    store = LocalArtifactStore(root)

    def corrupt(digest: str) -> None:
        path = root / "sha256" / digest[:2] / digest
        path.chmod(0o644)
        data = path.read_bytes()
        path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\0")

    return Backend(
        store, corrupt,
        stored=lambda: sorted(p.name for p in (root / "sha256").glob("*/*")),
        temp_files=lambda: sorted((root / "tmp").iterdir()),
        spools_to_disk=True,
    )


def _s3(tmp_path: Path, endpoint: str) -> Backend:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    prefix = f"run-{uuid.uuid4().hex[:8]}/blobs"
    spool = tmp_path / "spool"
    spool.mkdir()
    store = S3ArtifactStore(BUCKET, prefix, endpoint_url=endpoint, spool_dir=spool)

    def corrupt(digest: str) -> None:
        key = f"{prefix}/sha256/{digest[:2]}/{digest}"
        data = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        damaged = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\0"
        client.put_object(Bucket=BUCKET, Key=key, Body=damaged)

    def stored() -> list[str]:
        listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
        return sorted(item["Key"].rsplit("/", 1)[1] for item in listing.get("Contents", []))

    return Backend(store, corrupt, stored, lambda: sorted(spool.iterdir()), spools_to_disk=True)


def _memory() -> Backend:
    store = MemoryArtifactStore()
    return Backend(store, store.corrupt, stored=lambda: sorted(store._blobs),
                   temp_files=lambda: [], spools_to_disk=False)


@pytest.fixture(params=["local", "s3", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local(tmp_path)
    if request.param == "s3":
        return _s3(tmp_path, request.getfixturevalue("s3_endpoint"))
    return _memory()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks_of(data: bytes, size: int = 1000) -> Iterator[bytes]:
    return (data[i:i + size] for i in range(0, len(data), size))


# --- the contract -------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", os.urandom(70_001)], ids=["empty", "one-byte", "70k"])
def test_round_trip(backend: Backend, data: bytes, tmp_path: Path) -> None:
    store = backend.store
    stored = store.put(chunks_of(data))
    assert stored == StoredArtifact(digest=sha(data), size=len(data))
    assert store.exists(stored.digest) and store.exists(f"sha256:{stored.digest}")
    assert store.size(stored.digest) == len(data)
    assert b"".join(store.read(stored.digest, chunk_size=4096)) == data
    assert store.fetch(f"sha256:{stored.digest}", tmp_path / "out" / "blob").read_bytes() == data
    assert backend.temp_files() == []


def test_put_is_idempotent(backend: Backend) -> None:
    first = backend.store.put([b"same ", b"bytes"])
    second = backend.store.put([b"same bytes"])
    assert first == second
    assert backend.stored() == [first.digest]


def test_expected_digest_match_is_accepted(backend: Backend) -> None:
    stored = backend.store.put([b"abc"], expected_digest=f"sha256:{sha(b'abc')}")
    assert stored.digest == sha(b"abc")


def test_expected_digest_mismatch_stores_nothing(backend: Backend) -> None:
    with pytest.raises(errors.InvalidInput, match="expected_digest"):
        backend.store.put([b"actual bytes"], expected_digest=sha(b"other bytes"))
    assert backend.stored() == []
    assert backend.temp_files() == []


def test_size_limit_discards_the_upload(backend: Backend) -> None:
    with backend.store.writer(max_bytes=10) as writer:
        writer.write(b"0123456789")
        with pytest.raises(errors.PayloadTooLarge, match="10 bytes"):
            writer.write(b"!")
        assert backend.temp_files() == []
        with pytest.raises(errors.Conflict):
            writer.commit()
    assert backend.stored() == []


def test_put_over_the_limit_raises(backend: Backend) -> None:
    with pytest.raises(errors.PayloadTooLarge):
        backend.store.put(chunks_of(b"x" * 5000), max_bytes=4999)
    assert backend.stored() == [] and backend.temp_files() == []


def test_corrupt_blob_fails_read_and_fetch(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    digest = backend.store.put([data]).digest
    backend.corrupt(digest)
    with pytest.raises(errors.DigestMismatch) as caught:
        b"".join(backend.store.read(digest, chunk_size=1024))
    assert caught.value.expected == digest
    dest = tmp_path / "fetched" / "model.bin"
    with pytest.raises(errors.DigestMismatch):
        backend.store.fetch(digest, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_unknown_digest_is_not_found(backend: Backend, tmp_path: Path) -> None:
    missing = sha(b"never stored")
    assert not backend.store.exists(missing)
    with pytest.raises(errors.NotFound, match=missing):
        backend.store.size(missing)
    with pytest.raises(errors.NotFound):
        backend.store.read(missing)  # raised at the call, before iteration
    with pytest.raises(errors.NotFound):
        backend.store.fetch(missing, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("bad", ["", "abc", "sha256:" + "G" * 64, "../" + "a" * 61, "A" * 64])
def test_malformed_digest_is_invalid_input(backend: Backend, bad: str) -> None:
    with pytest.raises(errors.InvalidInput, match="digest"):
        backend.store.exists(bad)
    with pytest.raises(errors.InvalidInput, match="expected_digest"):
        backend.store.writer(expected_digest=bad)
    assert backend.temp_files() == []


def test_writer_left_by_an_exception_leaves_nothing(backend: Backend) -> None:
    with pytest.raises(RuntimeError, match="client went away"):
        with backend.store.writer() as writer:
            writer.write(b"partial upload")
            raise RuntimeError("client went away")
    assert backend.stored() == [] and backend.temp_files() == []


def test_writer_without_commit_leaves_nothing(backend: Backend) -> None:
    with backend.store.writer() as writer:
        writer.write(b"forgotten")
    writer.abort()  # safe to call again
    assert backend.stored() == [] and backend.temp_files() == []


def test_closed_writer_refuses_more_work(backend: Backend) -> None:
    with backend.store.writer() as writer:
        writer.write(b"done")
        stored = writer.commit()
        assert writer.commit() == stored
        with pytest.raises(errors.Conflict):
            writer.write(b"more")
    assert backend.stored() == [stored.digest]


def test_large_streamed_write_does_not_accumulate(backend: Backend) -> None:
    chunk_count, hasher = 20, hashlib.sha256()
    with backend.store.writer() as writer:
        tracemalloc.start()
        try:
            for i in range(chunk_count):
                chunk = bytes([i]) * MiB
                hasher.update(chunk)
                writer.write(chunk)
                del chunk
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        if backend.spools_to_disk:
            assert peak < 4 * MiB, f"write() held {peak} bytes in memory"
            assert [p.stat().st_size for p in backend.temp_files()] == [chunk_count * MiB]
        stored = writer.commit()
    assert stored == StoredArtifact(hasher.hexdigest(), chunk_count * MiB)
    reread = hashlib.sha256()
    for piece in backend.store.read(stored.digest):
        assert len(piece) <= MiB
        reread.update(piece)
    assert reread.hexdigest() == stored.digest
    assert backend.temp_files() == []


def test_concurrent_writers_of_the_same_bytes(backend: Backend) -> None:
    data = os.urandom(3 * MiB)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: backend.store.put(chunks_of(data, 64 * 1024)), range(8)))
    assert set(results) == {StoredArtifact(sha(data), len(data))}
    assert backend.stored() == [sha(data)]
    assert b"".join(backend.store.read(sha(data))) == data
    assert backend.temp_files() == []


# --- adapter-specific checks --------------------------------------------------------------


def test_local_blobs_are_read_only_and_sharded(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put([b"model"]).digest
    path = tmp_path / "sha256" / digest[:2] / digest
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_local_store_sweeps_stale_temp_files(tmp_path: Path) -> None:
    LocalArtifactStore(tmp_path)
    stale, fresh = tmp_path / "tmp" / "upload-old.part", tmp_path / "tmp" / "upload-new.part"
    stale.write_bytes(b"left by a killed server")
    fresh.write_bytes(b"a live upload")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    LocalArtifactStore(tmp_path)
    assert sorted((tmp_path / "tmp").iterdir()) == [fresh]


def test_s3_from_url(s3_endpoint: str) -> None:
    store = S3ArtifactStore.from_url(f"s3://{BUCKET}/some/prefix/", endpoint_url=s3_endpoint)
    assert (store.bucket, store.prefix) == (BUCKET, "some/prefix")
    assert store.put([b"via url"]).digest == sha(b"via url")


@pytest.mark.parametrize("url, problem", [
    ("http://bucket/x", "s3://"),
    ("s3:///prefix", "no bucket"),
    ("s3://AKIASECRET:hunter2@bucket/x", "no credentials"),
    ("s3://Bad_Bucket/x", "invalid S3 bucket name"),
])
def test_s3_from_url_rejects(url: str, problem: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=problem) as caught:
        S3ArtifactStore.from_url(url, client=object())
    assert "hunter2" not in str(caught.value)


def test_s3_missing_bucket_is_a_configuration_error(s3_endpoint: str) -> None:
    store = S3ArtifactStore("no-such-bucket-here", "x", endpoint_url=s3_endpoint)
    with pytest.raises(errors.ConfigurationError, match="does not exist"):
        store.put([b"nowhere to go"])
    with pytest.raises(errors.ConfigurationError, match="does not exist"):
        store.read(sha(b"nowhere to go"))


def test_s3_unreachable_endpoint_is_a_configuration_error(s3_endpoint: str) -> None:
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                          config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    store = S3ArtifactStore(BUCKET, "x", client=client)
    with pytest.raises(errors.ConfigurationError, match="EndpointConnectionError") as caught:
        store.size(sha(b"anything"))
    assert "testing" not in str(caught.value)
