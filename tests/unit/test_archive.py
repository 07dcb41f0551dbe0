"""Deterministic packing and safe extraction of folder archives."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.artifacts import archive
from threadline.domain import errors


def _tree(root: Path, files: dict[str, bytes], *, reverse: bool, mtime: int, mode: int) -> Path:
    """Create ``files`` under ``root`` in the given order, with the given times and modes."""
    for rel in sorted(files, reverse=reverse):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
        path.chmod(0o755 if rel.endswith(".sh") else mode)
        os.utime(path, (mtime, mtime))
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        os.utime(folder, (mtime, mtime))
    return root


MODEL = {
    "MLmodel": b"flavors: {}\n",
    "model.pkl": os.urandom(5000),
    "code/run.sh": b"#!/bin/sh\n",
    "code/util/helpers.py": b"x = 1\n",
    "data/empty.txt": b"",
    "na\u00efve-\u540d\u524d.txt": b"unicode name",
    "deep/" + "/".join(["long-folder-name"] * 8) + "/f": b"a name past 100 characters",
}


def _pack(src: Path, dest: Path) -> bytes:
    archive.pack_directory(src, dest)
    return dest.read_bytes()


def test_pack_is_deterministic(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one", MODEL, reverse=False, mtime=1_000_000, mode=0o600)
    two = _tree(tmp_path / "two", MODEL, reverse=True, mtime=1_700_000_000, mode=0o664)
    first, second = _pack(one, tmp_path / "a.tar"), _pack(two, tmp_path / "b.tar")
    assert first == second
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_packed_metadata_is_normalised(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", MODEL, reverse=False, mtime=123456, mode=0o600)
    archive.pack_directory(src, tmp_path / "m.tar")
    with tarfile.open(tmp_path / "m.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert not any(n.startswith(("./", "/")) for n in names)
    for member in members:
        owner = (member.uid, member.gid, member.uname, member.gname)
        assert (member.mtime, owner) == (0, (0, 0, "", ""))
        expected = 0o755 if member.isdir() or member.name.endswith(".sh") else 0o644
        assert member.mode == expected, member.name


def test_round_trip(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", MODEL, reverse=False, mtime=5, mode=0o640)
    (src / "empty-folder").mkdir()
    archive.pack_directory(src, tmp_path / "m.tar")
    assert archive.is_archive(tmp_path / "m.tar")
    archive.extract(tmp_path / "m.tar", tmp_path / "out")
    for rel, data in MODEL.items():
        assert (tmp_path / "out" / rel).read_bytes() == data
    assert (tmp_path / "out" / "empty-folder").is_dir()
    assert os.access(tmp_path / "out" / "code/run.sh", os.X_OK)
    assert _pack(tmp_path / "out", tmp_path / "again.tar") == (tmp_path / "m.tar").read_bytes()


def test_extract_into_an_existing_empty_folder(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"a": b"1"}, reverse=False, mtime=5, mode=0o644)
    archive.pack_directory(src, tmp_path / "m.tar")
    (tmp_path / "out").mkdir()
    archive.extract(tmp_path / "m.tar", tmp_path / "out")
    assert (tmp_path / "out" / "a").read_bytes() == b"1"


names = st.text(alphabet="abcxyz-_.0", min_size=1, max_size=12).filter(
    lambda n: n not in {".", ".."}
)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join),
                       st.binary(max_size=300), max_size=8))
def test_pack_extract_pack_is_stable(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        written: dict[str, bytes] = {}
        for rel, data in files.items():
            path = src / rel
            if any(p.is_file() for p in [*path.parents, path]) or path.is_dir():
                continue  # a name that is a prefix of another; hypothesis likes those
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written[rel] = data
        first = _pack(src, root / "1.tar")
        archive.extract(root / "1.tar", root / "out")
        assert {rel: (root / "out" / rel).read_bytes() for rel in written} == written
        assert _pack(root / "out", root / "2.tar") == first


def test_pack_refuses_symlinks_and_fifos(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok").write_bytes(b"1")
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(errors.InvalidInput, match="link is a symbolic link"):
        archive.pack_directory(src, tmp_path / "m.tar")
    (src / "link").unlink()
    os.mkfifo(src / "pipe")
    with pytest.raises(errors.InvalidInput, match="pipe is a named pipe"):
        archive.pack_directory(src, tmp_path / "m.tar")
    assert not (tmp_path / "m.tar").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_pack_refuses_a_destination_inside_the_folder(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidInput, match="inside"):
        archive.pack_directory(tmp_path, tmp_path / "m.tar")


# --- hostile archives ----------------------------------------------------------------------


def _malicious(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize("member, problem", [
    (_member("../evil"), "'..' components"),
    (_member("ok/../../evil"), "'..' components"),
    (_member("/etc/evil"), "absolute paths"),
    (_member("link", tarfile.SYMTYPE, linkname="/etc/passwd"), "links are not allowed"),
    (_member("link", tarfile.SYMTYPE, linkname="../../outside"), "links are not allowed"),
    (_member("hard", tarfile.LNKTYPE, linkname="/etc/passwd"), "links are not allowed"),
    (_member("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), "devices"),
    (_member("fifo", tarfile.FIFOTYPE), "devices, pipes"),
])
def test_extract_refuses_hostile_members(tmp_path: Path, member: tarfile.TarInfo,
                                         problem: str) -> None:
    bad = _malicious(tmp_path / "bad.tar", (_member("fine.txt"), b"ok"), (member, b"evil"))
    with pytest.raises(errors.InvalidInput, match=problem) as caught:
        archive.extract(bad, tmp_path / "work" / "out")
    assert member.name in str(caught.value)
    assert list((tmp_path / "work").iterdir()) == []  # nothing extracted, no staging left
    assert not (tmp_path / "evil").exists()


def test_extract_refuses_too_many_bytes(tmp_path: Path) -> None:
    bad = _malicious(tmp_path / "big.tar", (_member("a"), b"x" * 600), (_member("b"), b"x" * 600))
    too_large = "b: the archive unpacks to more than 1000 bytes"
    with pytest.raises(errors.PayloadTooLarge, match=too_large):
        archive.extract(bad, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "out").exists()


def test_extract_refuses_too_many_members(tmp_path: Path) -> None:
    bad = _malicious(tmp_path / "many.tar", *[(_member(f"f{i}"), b"") for i in range(6)])
    with pytest.raises(errors.InvalidInput, match="f5: the archive has more than 5 members"):
        archive.extract(bad, tmp_path / "out", max_members=5)
    assert not (tmp_path / "out").exists()


def test_extract_refuses_duplicate_members(tmp_path: Path) -> None:
    bad = _malicious(tmp_path / "dup.tar", (_member("a"), b"1"), (_member("./a"), b"2"))
    with pytest.raises(errors.InvalidInput, match="appears twice"):
        archive.extract(bad, tmp_path / "out")


def test_extract_needs_an_empty_destination(tmp_path: Path) -> None:
    good = _malicious(tmp_path / "good.tar", (_member("a"), b"1"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_bytes(b"mine")
    with pytest.raises(errors.InvalidInput, match="not empty"):
        archive.extract(good, tmp_path / "full")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(errors.InvalidInput, match="not a folder"):
        archive.extract(good, tmp_path / "file")
    assert (tmp_path / "full" / "keep").read_bytes() == b"mine"


def test_extract_refuses_what_is_not_a_tar(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(os.urandom(4096))
    assert not archive.is_archive(tmp_path / "model.onnx")
    with pytest.raises(errors.InvalidInput, match="model.onnx is not an uncompressed tar"):
        archive.extract(tmp_path / "model.onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_refuses_a_truncated_archive(tmp_path: Path) -> None:
    whole = _malicious(tmp_path / "whole.tar", (_member("big"), os.urandom(50_000)))
    (tmp_path / "cut.tar").write_bytes(whole.read_bytes()[:20_000])
    with pytest.raises(errors.InvalidInput, match="cut.tar"):
        archive.extract(tmp_path / "cut.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extracted_modes_are_safe(tmp_path: Path) -> None:
    bad = _malicious(tmp_path / "suid.tar", (_member("tool", mode=0o6777), b"#!/bin/sh\n"))
    archive.extract(bad, tmp_path / "out")
    mode = stat.S_IMODE((tmp_path / "out" / "tool").stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH)
