"""Sealed prediction-log segments go to S3 and leave the staging folder only once uploaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from threadline.domain import errors
from threadline.serving.segment_upload import SegmentUploader


class Bucket:
    def __init__(self, failures: int = 0) -> None:
        self.objects: dict[str, bytes] = {}
        self.failures = failures

    def upload_file(self, path: str, bucket: str, key: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("S3 is away")
        self.objects[f"{bucket}/{key}"] = Path(path).read_bytes()


def segment(staging: Path, name: str = "seg-a.parquet") -> Path:
    folder = staging / "deployment=d" / "date=2026-11-28"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"PAR1")
    return path


def test_segments_left_by_a_dead_process_and_new_ones_are_uploaded_then_removed(tmp_path: Path) -> None:
    leftover = segment(tmp_path, "seg-old.parquet")
    bucket = Bucket()
    uploader = SegmentUploader(tmp_path, "s3://logs/prod", client=bucket)
    uploader.start()
    uploader.enqueue(segment(tmp_path, "seg-new.parquet"))
    uploader.close()
    assert set(bucket.objects) == {"logs/prod/deployment=d/date=2026-11-28/seg-old.parquet",
                                   "logs/prod/deployment=d/date=2026-11-28/seg-new.parquet"}
    assert not leftover.exists() and not list(tmp_path.rglob("*.parquet"))


def test_a_failed_upload_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    bucket = Bucket(failures=1)
    uploader = SegmentUploader(tmp_path, "s3://logs", client=bucket)
    uploader.start()
    uploader.enqueue(segment(tmp_path))
    uploader.close(timeout=10)
    assert list(bucket.objects) == ["logs/deployment=d/date=2026-11-28/seg-a.parquet"]


def test_closing_while_s3_is_away_keeps_the_segment_staged(tmp_path: Path) -> None:
    uploader = SegmentUploader(tmp_path, "s3://logs", client=Bucket(failures=1000))
    uploader.start()
    staged = segment(tmp_path)
    uploader.enqueue(staged)
    uploader.close(timeout=1)
    assert staged.exists()


def test_only_s3_locations_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigurationError, match="not an s3://BUCKET/PREFIX"):
        SegmentUploader(tmp_path, "/var/log/predictions", client=Bucket())
