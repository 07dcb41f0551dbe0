"""The artifact store in an S3-compatible bucket (AWS S3, MinIO, Ceph), for deployments at scale.

Blobs live at ``<prefix>/sha256/ab/<hex>``. Uploads stream into a local temp file while
they are hashed, because the key is the hash and is known only at the end; ``commit``
then uploads the file (multipart when large) unless the key already exists. boto3 is
imported lazily, so installations without the ``s3`` extra get a clear MissingExtra.
Every botocore error is translated here; messages carry the bucket, key and error code,
never the error text, which could echo request details.
"""

from __future__ import annotations

import contextlib
import functools
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from threadline.adapters.artifacts import _hashing
from threadline.domain import errors, names
from threadline.ports import ArtifactWriter, StoredArtifact

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_ACCESS = frozenset({"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                     "ExpiredToken", "InvalidToken"})
_CORRUPT = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MULTIPART_BYTES = 16 << 20


def _boto(module: str) -> Any:
    return errors.require_module(module, extra="s3", feature="the S3 artifact store")


class S3ArtifactStore(_hashing.StoreMixin):
    """Content-addressed blobs in ``s3://bucket/prefix``; see the module docstring."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client: Any = None, spool_dir: Path | None = None) -> None:
        if not _BUCKET.match(bucket):
            raise errors.ConfigurationError(
                f"invalid S3 bucket name {bucket!r}: "
                "use 3-63 lowercase letters, digits, '.' and '-'"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._spool_dir = Path(spool_dir or tempfile.gettempdir())
        if client is None:
            client = _boto("boto3").session.Session().client("s3", endpoint_url=endpoint_url)
        self._client = client
        transfer = _boto("boto3.s3.transfer")
        self._transfer_config = transfer.TransferConfig(
            multipart_threshold=_MULTIPART_BYTES, multipart_chunksize=_MULTIPART_BYTES
        )

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None,
                 client: Any = None) -> S3ArtifactStore:
        """Open ``s3://bucket/prefix``; ``endpoint_url`` points at a non-AWS service."""
        parts = urlsplit(url)
        # The URL itself is never echoed: a mistyped one may carry a secret.
        if parts.scheme != "s3":
            raise errors.ConfigurationError(
                f"an S3 artifact URL must start with s3://, not {parts.scheme or 'nothing'}://"
            )
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise errors.ConfigurationError(
                "an S3 artifact URL is s3://BUCKET/PREFIX with no credentials, query or fragment; "
                "credentials come from the usual AWS environment or profile"
            )
        if not parts.netloc:
            raise errors.ConfigurationError(
                "the S3 artifact URL names no bucket: use s3://BUCKET/PREFIX"
            )
        return cls(parts.netloc, parts.path, endpoint_url=endpoint_url, client=client)

    def writer(self, *, max_bytes: int | None = None,
               expected_digest: str | None = None) -> ArtifactWriter:
        return _hashing.HashingWriter(
            functools.partial(_hashing.FileSpool, self._spool_dir),
            self._publish,
            max_bytes=max_bytes,
            expected_digest=expected_digest,
        )

    def exists(self, digest: str) -> bool:
        try:
            self.size(digest)
        except errors.NotFound:
            return False
        return True

    def size(self, digest: str) -> int:
        key = self._key(digest)
        with self._translated("look up", key):
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def read(self, digest: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        key = self._key(digest)
        _hashing.check_chunk_size(chunk_size)
        with self._translated("read", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return _hashing.verified(self._stream(body, key, chunk_size), key.rsplit("/", 1)[1])

    def _stream(self, body: Any, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._translated("read", key):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def _publish(self, spool: _hashing.FileSpool, stored: StoredArtifact) -> None:
        if self.exists(stored.digest):
            return  # equal bytes are already stored: the write is idempotent
        key = self._key(stored.digest)
        with self._translated("upload", key):
            self._client.upload_file(
                str(spool.path), self.bucket, key, Config=self._transfer_config
            )

    def _key(self, digest: str) -> str:
        hexdigest = names.sha256_digest(digest)
        key = f"sha256/{hexdigest[:2]}/{hexdigest}"
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """Turn botocore's exceptions into ours, naming the object but never the credentials."""
        botocore = _boto("botocore.exceptions")
        upload_failed = _boto("boto3.exceptions").S3UploadFailedError
        try:
            yield
        except (botocore.ClientError, upload_failed) as exc:
            cause = exc if isinstance(exc, botocore.ClientError) else exc.__context__
            code = str(getattr(cause, "response", {}).get("Error", {}).get("Code", "unknown"))
            raise self._error_for(code, action, key) from exc
        except botocore.BotoCoreError as exc:
            raise errors.ConfigurationError(
                f"cannot {action} s3://{self.bucket}/{key}: {type(exc).__name__}; "
                "check the endpoint URL, the network and the AWS credentials"
            ) from exc

    def _error_for(self, code: str, action: str, key: str) -> errors.ThreadlineError:
        where = f"s3://{self.bucket}/{key}"
        if code in _NOT_FOUND:
            return errors.NotFound(f"artifact sha256:{key.rsplit('/', 1)[1]} is not in the store")
        if code == "NoSuchBucket":
            return errors.ConfigurationError(f"the S3 bucket {self.bucket!r} does not exist")
        if code in _ACCESS:
            return errors.ConfigurationError(
                f"S3 refused to {action} {where} ({code}): check the credentials and bucket policy"
            )
        if code in _CORRUPT:
            return errors.IntegrityError(
                f"S3 reports corrupt bytes on {action} of {where} ({code})"
            )
        return errors.ConfigurationError(f"cannot {action} {where}: S3 error {code}")
