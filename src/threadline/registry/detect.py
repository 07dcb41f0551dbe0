"""Recognising an artifact's format from its bytes, without loading anything.

The file name and the declared flavor are claims; the content is the fact. A pickle is
recognised by its opening PROTO opcode (also inside joblib's compressed streams) and is
never unpickled; a skops file is a zip with ``schema.json``; an MLflow folder arrives as
the uncompressed tar ``archive.pack_directory`` writes; ONNX is whatever parses as a
ModelProto with a graph. Pickle protocols 0 and 1 are not recognised, so they are refused
as unknown content: fail closed.
"""

from __future__ import annotations

import bz2
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import Any

from threadline.artifacts import archive
from threadline.domain import errors
from threadline.domain.models import ArtifactFormat
from threadline.registry import onnx_graph

_HEAD_BYTES = 4096


def detect_format(path: Path, *, onnx_required: bool) -> ArtifactFormat | None:
    """The format of ``path``, or None if it is none we read.

    With ``onnx_required`` (ONNX was declared), content that is nothing else raises
    InvalidInput with the ONNX parser's reason, and a missing onnx extra raises MissingExtra.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise errors.InvalidInput(f"cannot read {path.name}: {exc}", field="artifact") from exc
    if head.startswith(b"PK\x03\x04"):
        return ArtifactFormat.SKOPS if _zip_has(path, "schema.json") else None
    if _is_pickle(head) or _is_pickle(_decompressed_head(head)):
        return ArtifactFormat.PICKLE
    if archive.is_archive(path):
        return ArtifactFormat.MLFLOW_DIR
    if onnx_graph.parse(path, required=onnx_required) is not None:
        return ArtifactFormat.ONNX
    return None


def _is_pickle(head: bytes) -> bool:
    """Protocol 2+ pickles open with PROTO (0x80) and the protocol number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _decompressed_head(head: bytes) -> bytes:
    """The first bytes of a joblib-compressed stream (zlib, gzip, bz2, xz, lzma), else b''."""
    if head[:1] == b"\x78" or head[:2] == b"\x1f\x8b":
        decompressor: Any = zlib.decompressobj(wbits=47)  # 32 + 15: zlib or gzip header
    elif head[:3] == b"BZh":
        decompressor = bz2.BZ2Decompressor()
    elif head[:6] == b"\xfd7zXZ\x00" or head[:3] == b"]\x00\x00":
        decompressor = lzma.LZMADecompressor()
    else:
        return b""
    try:
        return decompressor.decompress(head, 16)
    except (zlib.error, OSError, lzma.LZMAError, EOFError):
        return b""


def _zip_has(path: Path, member: str) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return member in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
