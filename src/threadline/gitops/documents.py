"""Reading ModelDeployment documents from YAML, with every error naming file, line and field.

``yaml.safe_load_all`` forgets where things were, so documents are composed first (each node
keeps its start mark) and constructed after; ``problems`` walks a pydantic error location back
through the node tree to the line a person has to fix. Every refusal is an
``InvalidInput`` whose message has one ``{source}:{line}: {field.path}: {what is wrong}`` line
per problem. ``load_tree`` is what the GitOps agent reads a checkout with: a bad document is
reported and everything else still loads, so an agent must not prune while errors are reported
(the deployment of a broken document is missing from the list, not deleted from Git).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from threadline.domain import errors
from threadline.gitops import problems, spec

MAX_BYTES = 1 << 20
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 7x faster


@dataclass(frozen=True)
class _Loaded:
    deployment: spec.ModelDeployment
    source: str
    line: int  # of metadata.name, for duplicate reports


def load_file(path: Path, *, max_bytes: int = MAX_BYTES) -> list[spec.ModelDeployment]:
    """Every deployment in one YAML file, or InvalidInput listing every problem in it."""
    return load_text(_read(path, str(path), max_bytes, follow_symlinks=True), str(path))


def load_text(text: str, source: str) -> list[spec.ModelDeployment]:
    """Every deployment in a multi-document YAML text; ``source`` names it in errors."""
    loaded, lines = _parse(text, source)
    if lines:
        raise errors.InvalidInput("\n".join(lines))
    return [item.deployment for item in loaded]


def load_tree(root: Path, *, max_bytes: int = MAX_BYTES
              ) -> tuple[list[spec.ModelDeployment], list[errors.InvalidInput]]:
    """Every deployment in the ``*.yaml``/``*.yml`` files below ``root``, and the problems found.

    Files are read in sorted order and named relative to ``root``; hidden files and folders
    (``.git``, ``.github``) are skipped, and symbolic links are never followed.
    """
    return load_files(yaml_files(root), max_bytes=max_bytes, relative_to=root)


Schema = TypeVar("Schema", bound=pydantic.BaseModel)


def load_one(text: str, source: str, schema: type[Schema], *, what: str, max_bytes: int = MAX_BYTES) -> Schema:
    """One YAML mapping validated by ``schema`` (a policy, a model card), every problem by line.

    ``what`` names the document in the message for an empty or non-mapping text.
    """
    if len(text.encode("utf-8")) > max_bytes:
        raise errors.PayloadTooLarge(f"{source}: larger than the limit of {max_bytes} bytes")
    node, data, lines, error = _compose_one(_FAST_LOADER, text, source)
    if error is not None and _FAST_LOADER is not yaml.SafeLoader:
        node, data, lines, error = _compose_one(yaml.SafeLoader, text, source)
    if error is not None:
        raise errors.InvalidInput(problems.yaml_error(error, text, source))
    if node is None or not isinstance(data, dict):
        line = 1 if node is None else node.start_mark.line + 1
        found = "an empty document" if data is None else problems.describe(data)
        raise errors.InvalidInput(f"{source}:{line}: {what} must be a mapping, not {found}")
    if not lines:
        try:
            return schema.model_validate(data, by_alias=True, by_name=False)
        except pydantic.ValidationError as exc:
            lines = problems.explain(exc, node, source, schema)
    raise errors.InvalidInput("\n".join(lines))


def _compose_one(loader_class: type[yaml.SafeLoader], text: str, source: str
                 ) -> tuple[yaml.Node | None, Any, list[str], yaml.YAMLError | None]:
    """The node, its data and its duplicate keys (found before construction rewrites merges)."""
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            duplicates = [] if node is None else problems.duplicate_keys(node, source)
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return None, None, [], exc
    return node, data, duplicates, None


def yaml_files(root: Path) -> list[Path]:
    """The YAML files below ``root``, sorted; symlinked folders are not entered."""
    if not root.is_dir():
        raise errors.InvalidInput(f"{root}: not a folder")
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [Path(folder, name) for name in files
                  if name.endswith((".yaml", ".yml")) and not name.startswith(".")]
    return sorted(found)


def load_files(paths: Sequence[Path], *, max_bytes: int = MAX_BYTES, relative_to: Path | None = None
               ) -> tuple[list[spec.ModelDeployment], list[errors.InvalidInput]]:
    """Load many files, collecting one InvalidInput per bad file instead of stopping.

    Good documents of a bad file still load. A deployment declared twice (same name and
    environment) keeps its first declaration, in the order of ``paths``; the second is an error.
    """
    def texts() -> Iterator[tuple[str, str | errors.InvalidInput]]:
        for path in paths:
            source = path.relative_to(relative_to).as_posix() if relative_to else str(path)
            try:
                yield source, _read(path, source, max_bytes, follow_symlinks=False)
            except errors.InvalidInput as exc:
                yield source, exc

    return _collect(texts())


ParseCache = dict[tuple[str, bytes], tuple[list["_Loaded"], list[str]]]


def load_snapshot(files: Mapping[str, bytes], cache: ParseCache | None = None
                  ) -> tuple[list[spec.ModelDeployment], list[errors.InvalidInput]]:
    """Like ``load_files`` for the files of one Git commit (path -> bytes), in path order.

    With ``cache`` (kept by the caller between passes), a file whose path and bytes are
    unchanged is not parsed again: parsing is most of a pass's cost when nothing changed. The
    cache is replaced by this snapshot's entries, so it never outgrows the repository.
    """
    fresh: ParseCache = {}

    def texts() -> Iterator[tuple[str, str | errors.InvalidInput | tuple[list[_Loaded], list[str]]]]:
        for source in sorted(files):
            key = (source, hashlib.sha256(files[source]).digest())
            known = cache.get(key) if cache is not None else None
            if known is not None:
                fresh[key] = known
                yield source, known
                continue
            try:
                parsed = _parse(_decode(files[source], source), source)
            except errors.InvalidInput as exc:
                yield source, exc
                continue
            fresh[key] = parsed
            yield source, parsed

    found = _collect(texts())
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    return found


def _collect(texts: Iterable[tuple[str, str | errors.InvalidInput | tuple[list[_Loaded], list[str]]]]
             ) -> tuple[list[spec.ModelDeployment], list[errors.InvalidInput]]:
    kept: dict[tuple[str, str], _Loaded] = {}
    refused: list[errors.InvalidInput] = []
    for source, text in texts:
        if isinstance(text, errors.InvalidInput):
            refused.append(text)
            continue
        loaded, lines = _parse(text, source) if isinstance(text, str) else text
        if lines:
            refused.append(errors.InvalidInput("\n".join(lines)))
        for item in loaded:
            first = kept.setdefault(item.deployment.key, item)
            if first is not item:
                refused.append(errors.InvalidInput(_duplicate(first, item)))
    return [item.deployment for item in kept.values()], refused


def _read(path: Path, source: str, max_bytes: int, *, follow_symlinks: bool) -> str:
    try:
        info = os.stat(path, follow_symlinks=follow_symlinks)
        if stat.S_ISLNK(info.st_mode):
            raise errors.InvalidInput(f"{source}: a symbolic link: not followed")
        if not stat.S_ISREG(info.st_mode):
            raise errors.InvalidInput(f"{source}: not a regular file")
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise errors.InvalidInput(f"{source}: cannot read: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise errors.PayloadTooLarge(f"{source}: larger than the limit of {max_bytes} bytes")
    return _decode(data, source)


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise errors.InvalidInput(f"{source}:{line}: not UTF-8 text") from None


def _parse(text: str, source: str) -> tuple[list[_Loaded], list[str]]:
    """The deployments of each good document, and one line per problem in the others."""
    loaded, found, error = _compose(_FAST_LOADER, text, source)
    if error is not None and _FAST_LOADER is not yaml.SafeLoader:
        # libyaml words its errors its own way; the pure-Python parser's words are the same everywhere.
        loaded, found, error = _compose(yaml.SafeLoader, text, source)
    if error is not None:
        found.append(problems.yaml_error(error, text, source))
    return loaded, found


def _compose(loader_class: type[yaml.SafeLoader], text: str, source: str
             ) -> tuple[list[_Loaded], list[str], yaml.YAMLError | None]:
    """Compose, check and construct each document in turn, up to a YAML error if there is one."""
    loaded: dict[tuple[str, str], _Loaded] = {}
    found: list[str] = []
    try:
        loader = loader_class(text)  # refuses control characters before composing anything
        while loader.check_node():
            node = loader.get_node()
            duplicates = problems.duplicate_keys(node, source)
            data = loader.construct_document(node)
            if data is None:
                continue  # an empty document, e.g. after a trailing ---
            item, lines = _document(node, data, source)
            found += duplicates + lines
            if item is None or duplicates:
                continue
            first = loaded.setdefault(item.deployment.key, item)
            if first is not item:
                found.append(_duplicate(first, item))
    except yaml.YAMLError as exc:
        return list(loaded.values()), found, exc
    return list(loaded.values()), found, None


def _document(node: yaml.Node, data: Any, source: str) -> tuple[_Loaded | None, list[str]]:
    if not isinstance(data, dict):
        what = ("a document must be a mapping with apiVersion, kind, metadata and spec, "
                f"not {problems.describe(data)}")
        return None, [f"{source}:{node.start_mark.line + 1}: {what}"]
    for key, expected in (("apiVersion", spec.API_VERSION), ("kind", spec.KIND)):
        if key in data and data[key] != expected:
            where = f"{source}:{problems.line(node, (key,))}: {key}"
            return None, [f"{where}: unknown {key} {data[key]!r}, expected {expected}"]
    try:
        deployment = spec.ModelDeployment.model_validate(data, by_alias=True, by_name=False)
    except pydantic.ValidationError as exc:
        return None, problems.explain(exc, node, source)
    return _Loaded(deployment, source, problems.line(node, ("metadata", "name"))), []


def _duplicate(first: _Loaded, second: _Loaded) -> str:
    name, environment = second.deployment.key
    return (f"{second.source}:{second.line}: metadata.name: deployment {name!r} in environment "
            f"{environment!r} is declared twice; first at {first.source}:{first.line}")
