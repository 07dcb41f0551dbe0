"""Deterministic folder archives, and their safe extraction.

A model folder (an MLflow model, say) is stored as one content-addressed blob, so its
digest must depend on the content alone: the same files must give the same bytes whoever
packs them, whenever, and in whatever order they were created. ``pack_directory`` writes
an uncompressed PAX tar with sorted entries and normalised metadata for that reason.

``extract`` reads archives that come from outside (uploads, imported bundles), so it
checks every header before writing a byte, refuses anything that could escape the
destination or fill the disk, extracts with tarfile's ``data`` filter as a second line of
defence, and makes the result appear at ``dest`` only once it is complete.
Standard library only: the SDK packs with it too.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

from threadline.domain import errors

_FORMAT = tarfile.PAX_FORMAT
_DIR_MODE = 0o755
_FILE_MODE = 0o644
_EXEC_MODE = 0o755


def pack_directory(src: Path, dest: Path) -> None:
    """Write the folder ``src`` as a deterministic tar at ``dest`` (atomically)."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise errors.InvalidInput(f"{src} is not a folder", field="src")
    if dest.resolve().is_relative_to(src.resolve()):
        raise errors.InvalidInput(f"the archive {dest} cannot be written inside {src}",
                                  field="dest")
    entries = _entries(src)  # all refusals happen before anything is written
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            with tarfile.open(fileobj=out, mode="w", format=_FORMAT) as tar:
                for rel, path, info in entries:
                    _add(tar, rel, path, info)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, dest)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def extract(archive: Path, dest: Path, *, max_bytes: int = 4 << 30,
            max_members: int = 100_000) -> None:
    """Unpack ``archive`` into ``dest``, which must not exist or be an empty folder."""
    archive, dest = Path(archive), Path(dest)
    _require_empty(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".extract"))
    try:
        _unpack(archive, staging, max_bytes=max_bytes, max_members=max_members)
        os.chmod(staging, _DIR_MODE)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def is_archive(path: Path) -> bool:
    """Whether ``path`` is an uncompressed tar, i.e. a packed folder rather than a single file."""
    try:
        with tarfile.open(path, mode="r:"):
            return True
    except (tarfile.TarError, OSError):
        return False


def _unpack(archive: Path, staging: Path, *, max_bytes: int, max_members: int) -> None:
    try:
        with _open(archive) as tar:
            members = _checked_members(tar, staging, max_bytes=max_bytes, max_members=max_members)
            tar.extractall(staging, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise errors.InvalidInput(f"{exc.tarinfo.name}: {exc}", field="archive") from exc
    except tarfile.TarError as exc:
        raise errors.InvalidInput(f"{archive.name} is damaged: {exc}", field="archive") from exc


def _entries(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    """Every folder and file under ``root``, sorted so parents precede children."""
    found: list[tuple[tuple[str, ...], Path, os.stat_result]] = []
    pending: list[tuple[tuple[str, ...], Path]] = [((), root)]
    while pending:
        parts, folder = pending.pop()
        with os.scandir(folder) as scan:
            for entry in scan:
                here = (*parts, entry.name)
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append((here, Path(entry.path)))
                elif not stat.S_ISREG(info.st_mode):
                    raise errors.InvalidInput(
                        f"{'/'.join(here)} is a {_kind(info.st_mode)}; only regular files and "
                        "folders can be packed",
                        field="src",
                    )
                found.append((here, Path(entry.path), info))
    found.sort(key=lambda item: item[0])
    return [("/".join(parts), path, info) for parts, path, info in found]


def _add(tar: tarfile.TarFile, rel: str, path: Path, info: os.stat_result) -> None:
    member = tarfile.TarInfo(rel)
    member.mtime = 0
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    if stat.S_ISDIR(info.st_mode):
        member.type = tarfile.DIRTYPE
        member.mode = _DIR_MODE
        tar.addfile(member)
        return
    member.size = info.st_size
    member.mode = _EXEC_MODE if info.st_mode & 0o111 else _FILE_MODE
    with path.open("rb") as content:
        tar.addfile(member, content)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _require_empty(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise errors.InvalidInput(f"{dest} exists and is not a folder", field="dest")
    if dest.exists() and any(dest.iterdir()):
        raise errors.InvalidInput(f"{dest} is not empty: extract into a new or empty folder",
                                  field="dest")


def _open(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode="r:")
    except tarfile.ReadError as exc:
        raise errors.InvalidInput(f"{archive.name} is not an uncompressed tar archive",
                                  field="archive") from exc


def _checked_members(tar: tarfile.TarFile, root: Path, *, max_bytes: int,
                     max_members: int) -> list[tarfile.TarInfo]:
    """Check every header (reading no file data); return the members to extract."""
    root = root.resolve()
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    total = count = 0
    for member in tar:
        count += 1
        if count > max_members:
            raise errors.InvalidInput(
                f"{member.name}: the archive has more than {max_members} members", field="archive"
            )
        name = _checked_name(member)
        if member.issym() or member.islnk():
            raise errors.InvalidInput(f"{member.name}: links are not allowed", field="archive")
        if not (member.isreg() or member.isdir()):
            raise errors.InvalidInput(
                f"{member.name}: devices, pipes and other special files are not allowed",
                field="archive",
            )
        if name == ".":
            continue  # the archive's own root: that is the destination itself
        if not (root / name).resolve().is_relative_to(root):
            raise errors.InvalidInput(f"{member.name}: resolves outside the destination",
                                      field="archive")
        if name in seen:
            raise errors.InvalidInput(f"{member.name}: appears twice in the archive",
                                      field="archive")
        seen.add(name)
        total += member.size if member.isreg() else 0
        if total > max_bytes:
            raise errors.PayloadTooLarge(
                f"{member.name}: the archive unpacks to more than {max_bytes} bytes",
                field="archive",
            )
        members.append(member)
    return members


def _checked_name(member: tarfile.TarInfo) -> str:
    name = member.name
    if not name or "\0" in name:
        raise errors.InvalidInput(f"{name!r}: empty or NUL in the member name", field="archive")
    if name.startswith("/"):
        raise errors.InvalidInput(f"{name}: absolute paths are not allowed", field="archive")
    if ".." in name.split("/"):
        raise errors.InvalidInput(f"{name}: '..' components are not allowed", field="archive")
    return posixpath.normpath(name)
