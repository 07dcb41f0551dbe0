"""Sealed prediction-log segments to an S3 prefix, for a log location in object storage.

Parquet files cannot be appended to, and S3 objects cannot either, so the serving process
keeps writing parts locally (``predlog``) and uploads each segment once it is sealed into one
file, under the same layout (``<prefix>/deployment=<name>/date=<day>/seg-<id>.parquet``), then
deletes the local copy. Uploads are retried with backoff until they succeed; segments left in
the staging folder by a process that died are uploaded by the next one. Readers therefore see
a segment within ``rotate_seconds`` (5 minutes by default) of its first record.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from threadline.domain import errors

log = logging.getLogger("threadline.serving.log")


class SegmentUploader:
    def __init__(self, staging: Path, url: str, *, endpoint_url: str | None = None, client: Any = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise errors.ConfigurationError(f"{url!r} is not an s3://BUCKET/PREFIX location")
        self._staging = staging
        self._bucket, self._prefix = parts.netloc, parts.path.strip("/")
        if client is None:
            boto3 = errors.require_module("boto3", extra="s3", feature="a prediction log in S3")
            client = boto3.session.Session().client("s3", endpoint_url=endpoint_url)
        self._client = client
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="segment-upload", daemon=True)

    def start(self) -> None:
        for leftover in sorted(self._staging.glob("deployment=*/date=*/seg-*.parquet")):
            self._queue.put(leftover)
        self._thread.start()

    def enqueue(self, segment: Path) -> None:
        self._queue.put(segment)

    def close(self, timeout: float = 60.0) -> None:
        """Upload what is queued, retrying for up to ``timeout``; the rest stays staged for the next start."""
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout=timeout + 5)

    def _run(self) -> None:
        while (segment := self._queue.get()) is not None:
            delay = 0.5
            while not self._upload(segment):
                if self._closing.is_set() and time.monotonic() + delay > self._deadline:
                    return  # out of time: this segment and the queued ones stay staged
                if self._closing.is_set():
                    time.sleep(delay)
                else:
                    self._closing.wait(delay)  # woken early when closing starts
                delay = min(delay * 2, 60.0)

    def _upload(self, segment: Path) -> bool:
        if not segment.exists():
            return True
        key = "/".join(filter(None, (self._prefix, segment.relative_to(self._staging).as_posix())))
        try:
            self._client.upload_file(str(segment), self._bucket, key)
        except Exception as exc:  # network, credentials, throttling: retried, never lost
            log.warning("uploading %s to s3://%s/%s failed (%s); retrying", segment.name, self._bucket, key,
                        type(exc).__name__)
            return False
        segment.unlink(missing_ok=True)
        return True
