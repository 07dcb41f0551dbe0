"""Changing a deployment's resources and replica bounds in a checkout of the GitOps repository.

Git is the source of truth (DESIGN §6), so a recommendation is not applied to the cluster: it
becomes a change to the YAML file that declares the deployment, made in a checkout, shown as a
diff and sent through code review. A reviewer reads that diff, so it must hold the changed
lines and nothing else: comments, key order, quoting, flow or block style and the other
documents of the file stay as they were.

ruamel.yaml's round-trip mode keeps comments and quoting, but it still re-indents sequences and
joins flow mappings written over several lines. So the file is dumped twice, as loaded and as
edited, and only the lines that differ between those two dumps are carried into the original
text; lines ruamel would merely have reformatted keep their original bytes unless the edit
falls inside them. The result must load to exactly the data of ruamel's own edited dump (else
that dump is used as it is) and must validate as a ModelDeployment with the loader the agent
uses, so an edit never produces a spec the agent would refuse.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString, SingleQuotedScalarString

from threadline.domain import errors
from threadline.gitops import documents, spec

_WIDTH = 1 << 16  # never re-wrap a long line: a wrapped line is a changed line in review
_ORDER = {  # where a missing key goes: the order of the schema, which is the order people read
    "spec": [field.alias or name for name, field in spec.DeploymentSpec.model_fields.items()],
    "resources": [field.alias or name for name, field in spec.Resources.model_fields.items()],
    "replicas": [field.alias or name for name, field in spec.Replicas.model_fields.items()],
}
_DEFAULTS = {"resources": spec.Resources().model_dump(by_alias=True),
             "replicas": spec.Replicas().model_dump(by_alias=True)}
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Edit:
    """New values; None leaves a field as it is. cpu and memory are Kubernetes quantities ("250m", "512Mi")."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    replicas_min: int | None = None
    replicas_max: int | None = None


@dataclass(frozen=True)
class Located:
    """A deployment's file and the position of its document in that file (0 is the first)."""

    path: Path
    index: int


@dataclass(frozen=True)
class Change:
    """A file's text before and after an edit; ``diff`` is empty when there is nothing to change."""

    path: Path
    before: str
    after: str
    diff: str


def locate(checkout: Path, name: str, environment: str | None) -> Located:
    """The one ModelDeployment document named ``name`` (in ``environment`` when given).

    NotFound when no file declares it, InvalidInput listing every declaration when several do
    (without an environment, the same name in two environments is ambiguous).
    """
    return _find(checkout, name, environment)[0]


def apply(checkout: Path, name: str, environment: str | None, edit: Edit) -> Change:
    """The change that sets ``edit``'s values in the deployment's file; nothing is written.

    A value that already holds, declared or as the schema's default, is not written: a line
    that changes nothing would only be noise in review. InvalidInput, with the file untouched,
    when the result would not be a valid ModelDeployment (e.g. replicas min above max).
    """
    _check(edit)
    found, text, docs = _find(checkout, name, environment)
    rel = _relative(found.path, checkout)
    where = f"{rel}:{docs[found.index].lc.line + 1}"
    if not _edit(docs[found.index], edit, where):
        return Change(found.path, text, text, "")
    crlf = _crlf(text)
    original = _unix(text)
    dumper = _yaml(*_indentation([docs[found.index], *docs]))  # the edited document's style first
    edited = _dump(dumper, docs)
    plain = _dump(dumper, list(_yaml().load_all(original)))
    # Line by line first; then the edited document as ruamel writes it, the others untouched;
    # then ruamel's dump of the whole file, which is always right but may reformat.
    merged = next((candidate for candidate in (_merge(original, plain, edited, whole=False),
                                               _merge(original, plain, edited, whole=True))
                   if _same_data(candidate, edited)), edited)
    after = merged.replace("\n", "\r\n") if crlf else merged
    _validate(after, rel, found.index)
    return Change(found.path, text, after, _diff(text, after, rel))


def write(change: Change) -> None:
    """Replace the file with ``change.after`` atomically, keeping its permissions.

    A reader (the agent, an editor, git) sees the old file or the new one, never half of it.
    Conflict when the file no longer holds ``change.before``: someone changed it in between.
    """
    if change.after == change.before:
        return
    try:
        current = change.path.read_bytes().decode("utf-8")
        mode = stat.S_IMODE(os.stat(change.path).st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.NotFound(f"{change.path}: cannot read: {exc}") from None
    if current != change.before:
        raise errors.Conflict(f"{change.path}: changed since the edit was prepared; prepare it again")
    # A hidden name that does not end in .yaml: an agent pass in this checkout never reads it.
    handle, temporary = tempfile.mkstemp(dir=change.path.parent, prefix=f".{change.path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(change.after.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, change.path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _yaml(mapping: int = 2, sequence: int = 2, offset: int = 0) -> YAML:
    handler = YAML(typ="rt")
    handler.preserve_quotes = True
    handler.width = _WIDTH
    handler.indent(mapping=mapping, sequence=sequence, offset=offset)
    return handler


def _check(edit: Edit) -> None:
    """Refuse values of the wrong type before they reach YAML, where ``True`` would pass as 1."""
    for field in fields(edit):
        value = getattr(edit, field.name)
        if value is None:
            continue
        if field.name in ("cpu", "memory"):
            if not isinstance(value, str):
                raise errors.InvalidInput(f"must be a Kubernetes quantity string, not {value!r}", field=field.name)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise errors.InvalidInput(f"must be a whole number, not {value!r}", field=field.name)


def _find(checkout: Path, name: str, environment: str | None) -> tuple[Located, str, list[Any]]:
    if not checkout.is_dir():
        raise errors.NotFound(f"{checkout}: no such folder: is this a checkout of the GitOps repository?")
    matches: list[tuple[Located, str, list[Any]]] = []
    unreadable: list[str] = []
    for path, text, docs in _documents(checkout, unreadable):
        for index, doc in enumerate(docs):
            if _declares(doc, name, environment):
                matches.append((Located(path, index), text, docs))
    what = f"{name} ({environment})" if environment else name
    if not matches:
        skipped = f" ({len(unreadable)} unreadable: {', '.join(unreadable)})" if unreadable else ""
        raise errors.NotFound(f"no ModelDeployment {what} in {checkout}{skipped}: "
                              "is this a checkout of the GitOps repository?")
    if len(matches) > 1:
        places = ", ".join(f"{_relative(found.path, checkout)}:{docs[found.index].lc.line + 1} "
                           f"({docs[found.index]['metadata'].get('environment')})"
                           for found, _, docs in matches)
        hint = "" if environment else "; name the environment"
        raise errors.InvalidInput(f"ModelDeployment {what} is declared {len(matches)} times in {checkout}: "
                                  f"{places}{hint}")
    return matches[0]


def _documents(checkout: Path, unreadable: list[str]) -> Iterator[tuple[Path, str, list[Any]]]:
    """The files the agent would read (same walk, no symbolic links), loaded for round trip."""
    for path in documents.yaml_files(checkout):
        try:
            if path.is_symlink() or path.stat().st_size > documents.MAX_BYTES:
                continue
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            unreadable.append(_relative(path, checkout))
            continue
        if spec.KIND not in text:
            continue  # most files of a repository are something else: do not parse them
        try:
            docs = list(_yaml().load_all(_unix(text)))
        except YAMLError:
            unreadable.append(_relative(path, checkout))
            continue
        yield path, text, docs


def _declares(doc: Any, name: str, environment: str | None) -> bool:
    if not isinstance(doc, CommentedMap) or doc.get("kind") != spec.KIND:
        return False
    metadata = doc.get("metadata")
    return (isinstance(metadata, CommentedMap) and metadata.get("name") == name
            and (environment is None or metadata.get("environment") == environment))


def _crlf(text: str) -> bool:
    return "\r\n" in text and text.count("\r\n") == text.count("\n")


def _unix(text: str) -> str:
    """Windows line ends as ``\\n``: ruamel would keep the ``\\r`` inside comments; restored on output."""
    return text.replace("\r\n", "\n") if _crlf(text) else text


def _lines(text: str) -> list[str]:
    """Lines split at ``\\n`` only: ``str.splitlines`` also splits at characters YAML keeps inside scalars."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _relative(path: Path, checkout: Path) -> str:
    return path.relative_to(checkout).as_posix()


def _edit(doc: CommentedMap, edit: Edit, where: str) -> bool:
    """Set the values that differ from what the document says now; whether any did."""
    body = doc.get("spec")
    if not isinstance(body, CommentedMap):
        raise errors.InvalidInput(f"{where}: spec must be a mapping to be edited")
    wanted = {"resources": {"cpu": edit.cpu, "memory": edit.memory, "gpu": edit.gpu},
              "replicas": {"min": edit.replicas_min, "max": edit.replicas_max}}
    changed = False
    for section, values in wanted.items():
        existing = body.get(section)
        if existing is not None and not isinstance(existing, CommentedMap):
            raise errors.InvalidInput(f"{where}: spec.{section} must be a mapping to be edited")
        declared = existing if existing is not None else {}
        todo = {key: value for key, value in values.items()
                if value is not None and not _same(declared.get(key, _DEFAULTS[section][key]), value)}
        if not todo:
            continue
        mapping = existing if existing is not None else _new_mapping(body, section)
        for key, value in todo.items():
            _put(mapping, key, _scalar(mapping.get(key), value, mapping), _ORDER[section])
        changed = True
    return changed


def _same(old: Any, new: str | int) -> bool:
    if isinstance(old, bool) or not isinstance(old, (str, int, float)):
        return False
    if isinstance(new, str):
        return str(old) == new  # ``cpu: 2`` declares the quantity "2"
    return isinstance(old, int) and old == new


def _new_mapping(body: CommentedMap, section: str) -> CommentedMap:
    """An empty mapping for ``section``, flow or block like its neighbours, so it looks like them."""
    sibling = body.get("replicas" if section == "resources" else "resources")
    if isinstance(sibling, CommentedMap) and sibling:
        flow = bool(sibling.fa.flow_style())
    else:
        styles = [bool(value.fa.flow_style()) for value in body.values() if isinstance(value, CommentedMap) and value]
        flow = len(styles) > 0 and 2 * sum(styles) > len(styles)
    mapping = CommentedMap()
    if flow:
        mapping.fa.set_flow_style()
    else:
        mapping.fa.set_block_style()
    _put(body, section, mapping, _ORDER["spec"])
    return mapping


def _put(mapping: CommentedMap, key: str, value: Any, order: list[str]) -> None:
    """Set ``key``, in place when present, else after the keys the schema lists before it."""
    if key in mapping:
        mapping[key] = value
        return
    rank = order.index(key)
    position = 0
    for number, existing in enumerate(mapping):
        if existing in order and order.index(existing) < rank:
            position = number + 1
    mapping.insert(position, key, value)


def _scalar(old: Any, new: str | int, mapping: CommentedMap) -> Any:
    """``new`` quoted the way the file quotes: as the old value was, else as its neighbours are."""
    if isinstance(new, int):
        return new
    if isinstance(old, ScalarString) and type(old) is not ScalarString:
        return type(old)(new)  # "2" stays double quoted, '2' single quoted
    if isinstance(old, (int, float)) and not isinstance(old, bool) and _number(new) is not None:
        return _number(new)  # ``cpu: 2`` was written as a number: keep writing numbers
    if not _needs_quotes(new):
        return new
    quoted = next((type(value) for value in mapping.values()
                   if isinstance(value, (DoubleQuotedScalarString, SingleQuotedScalarString))),
                  DoubleQuotedScalarString)
    return quoted(new)


def _number(text: str) -> int | float | None:
    try:
        return int(text) if text.isdigit() else float(text) if text.replace(".", "", 1).isdigit() else None
    except ValueError:
        return None


def _needs_quotes(text: str) -> bool:
    """Whether a plain scalar would not read back as a string, in YAML 1.2 (ruamel) or 1.1 (the agent)."""
    if _yaml().resolver.resolve(ScalarNode, text, (True, False)) != _STR_TAG:
        return True
    try:
        return not isinstance(yaml.safe_load(text), str)
    except yaml.YAMLError:
        return True


def _indentation(docs: list[Any]) -> tuple[int, int, int]:
    """The file's mapping indent, sequence indent and dash offset, so that ruamel writes like it."""
    mapping, sequence = None, None

    def walk(node: Any) -> None:
        nonlocal mapping, sequence
        if isinstance(node, CommentedMap) and not node.fa.flow_style():
            # The edit lands under spec: where a document is inconsistent, spec's style wins.
            for value in sorted(node.values(), key=lambda value: value is not node.get("spec")):
                if isinstance(value, CommentedMap) and value and not value.fa.flow_style() and mapping is None:
                    mapping = value.lc.col - node.lc.col
                if (isinstance(value, CommentedSeq) and value and not value.fa.flow_style() and sequence is None
                        and 0 in value.lc.data):
                    sequence = (value.lc.data[0][1] - node.lc.col, value.lc.col - node.lc.col)
                walk(value)
        elif isinstance(node, CommentedSeq):
            for value in node:
                walk(value)

    for doc in docs:
        walk(doc)
    mapping = mapping if mapping and mapping > 0 else 2
    indent, offset = sequence if sequence and sequence[0] >= sequence[1] + 2 and sequence[1] >= 0 else (2, 0)
    return mapping, indent, offset


def _dump(handler: YAML, docs: list[Any]) -> str:
    stream = io.StringIO()
    handler.dump_all(docs, stream)
    return stream.getvalue()


def _merge(original: str, plain: str, edited: str, *, whole: bool) -> str:
    """``original`` with the line changes that turn ``plain`` into ``edited`` (both ruamel dumps).

    Where ruamel's dump differs from the original (reformatting), the original's lines are kept
    unless a change falls inside them, in which case that region is taken from ``edited``; with
    ``whole``, every region of a changed document is, so that its indentation stays consistent.
    """
    ours, theirs, after = (_lines(text) for text in (original, plain, edited))
    keep = [True] * len(theirs)
    before: list[list[str]] = [[] for _ in range(len(theirs) + 1)]  # inserted ahead of each line
    for tag, i1, i2, k1, k2 in difflib.SequenceMatcher(None, theirs, after, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        keep[i1:i2] = [False] * (i2 - i1)
        if tag == "insert":
            i1 = _insertion_point(theirs, keep, before, i1, after[k1])
        before[i1] += after[k1:k2]
    line_document = [0] * len(theirs)  # ruamel starts every document after the first with ---
    for number in range(1, len(theirs)):
        line_document[number] = line_document[number - 1] + theirs[number].startswith("---")
    gap_document = [0, *line_document]  # an insertion ahead of a --- line ends the document before it
    changed = ({line_document[i] for i in range(len(theirs)) if not keep[i]}
               | {gap_document[i] for i in range(len(theirs) + 1) if before[i]})
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, theirs, ours, autojunk=False).get_opcodes():
        region = set(line_document[i1:i2]) if i2 > i1 else {gap_document[i1]}
        touched = (not all(keep[i1:i2]) or any(before[i] for i in range(i1 + 1, i2))
                   or (whole and tag != "equal" and bool(region & changed)))
        for i in range(i1, i2):
            out += before[i]
            before[i] = []
            if keep[i] and (tag == "equal" or touched):
                out.append(theirs[i])
        if tag != "equal" and not touched:
            out += ours[j1:j2]
    return "".join(out + before[len(theirs)])


def _insertion_point(lines: list[str], keep: list[bool], before: list[list[str]], at: int, first: str) -> int:
    """Move an insertion above the blank lines and comments that ruamel files under the previous key.

    ruamel keeps a comment with the key before it, so a key appended to a mapping lands below
    the comment that introduces the next key or closes an outer block. Comments indented deeper
    than the new line belong to the block above it and stay above it.
    """
    depth = len(first) - len(first.lstrip(" "))
    while at > 0 and keep[at - 1] and not before[at - 1]:
        line = lines[at - 1]
        text = line.lstrip(" ")
        if text.strip() and not (text.startswith("#") and len(line) - len(text) <= depth):
            break
        at -= 1
    return at


def _same_data(text: str, reference: str) -> bool:
    """Whether two texts hold the same documents for the agent's loader (empty documents aside)."""
    try:
        return ([doc for doc in yaml.safe_load_all(text) if doc is not None]
                == [doc for doc in yaml.safe_load_all(reference) if doc is not None])
    except yaml.YAMLError:
        return False


def _validate(after: str, rel: str, index: int) -> None:
    """Refuse a result the agent would refuse because of the edited document.

    Problems of the file's other documents were there before and are left for their owners:
    those documents are byte for byte as they were, and an edit must not wait for them.
    """
    try:
        documents.load_text(after, rel)
        return
    except errors.InvalidInput as exc:
        problems = str(exc).splitlines()
    docs = list(_yaml().load_all(after))
    first = docs[index].lc.line + 1
    last = min((doc.lc.line for doc in docs[index + 1:] if hasattr(doc, "lc")), default=after.count("\n") + 1)
    mine = [line for line in problems if first <= _line_number(line, rel) <= last or _line_number(line, rel) == 0]
    if mine:
        raise errors.InvalidInput("refused: the edit would make the deployment invalid "
                                  "(the file is left as it was):\n" + "\n".join(mine))


def _line_number(problem: str, rel: str) -> int:
    """The line a problem names (``{rel}:{line}: ...``), 0 when it names none."""
    number = problem.removeprefix(f"{rel}:").partition(":")[0]
    return int(number) if problem.startswith(f"{rel}:") and number.isdigit() else 0


def _diff(before: str, after: str, rel: str) -> str:
    lines = difflib.unified_diff(_lines(before), _lines(after),
                                 f"a/{rel}", f"b/{rel}")
    return "".join(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines)
