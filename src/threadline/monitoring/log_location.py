"""Where the prediction log lives for its readers: a local folder or an S3 prefix.

Serving processes write the log locally and, for an S3 location, upload each sealed segment
(``serving.segment_upload``); readers list and open files through pyarrow's filesystems, so a
window is read the same way from either place, one column at a time. The layout and the rule
for which files are complete are ``serving.predlog_files``'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from threadline.domain import errors
from threadline.serving import predlog_files


@dataclass(frozen=True)
class LogLocation:
    filesystem: Any  # a pyarrow.fs.FileSystem
    root: str        # the folder (or bucket/prefix) that holds deployment=<name>/date=<day>/

    @classmethod
    def parse(cls, url: str, *, s3_endpoint_url: str | None = None) -> LogLocation:
        """A folder path, ``file://PATH`` or ``s3://BUCKET/PREFIX`` (credentials from the environment)."""
        if url.startswith("s3://"):
            parts = urlsplit(url)
            if not parts.netloc:
                raise errors.ConfigurationError(f"the prediction log URL {url!r} names no bucket")
            options: dict[str, Any] = {}
            if s3_endpoint_url:
                endpoint = urlsplit(s3_endpoint_url)
                options = {"endpoint_override": endpoint.netloc, "scheme": endpoint.scheme or "https"}
            return cls(pafs.S3FileSystem(**options), f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/"))
        if "://" in url and not url.startswith("file://"):
            raise errors.ConfigurationError(f"unsupported prediction log URL {url.split('://')[0]}://...: use a "
                                            "folder path, file://PATH or s3://BUCKET/PREFIX")
        return cls.local(Path(url.removeprefix("file://")).expanduser())

    @classmethod
    def local(cls, folder: Path) -> LogLocation:
        return cls(pafs.LocalFileSystem(), str(folder.resolve()))

    def __str__(self) -> str:
        scheme = "s3://" if isinstance(self.filesystem, pafs.S3FileSystem) else ""
        return scheme + self.root

    def files(self, deployment: str) -> list[str]:
        """The complete log files of ``deployment``, as paths this location opens."""
        base = f"{self.root}/deployment={deployment}"
        try:
            found = self.filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise errors.ConfigurationError(f"cannot list the prediction log at {self}: {exc}") from exc
        names = [info.path for info in found if info.type == pafs.FileType.File and info.path.endswith(".parquet")
                 and info.path[len(base):].count("/") == 2]
        return predlog_files.complete(sorted(names))

    def open(self, path: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.filesystem.open_input_file(path))
