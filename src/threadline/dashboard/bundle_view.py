"""A context bundle laid out for a reviewer: tables instead of nested JSON.

``bundles.chain`` records each step's output as JSON: a feature vector after a transform, the
probabilities or label of each ensemble member, per-class statistics of a forest's trees or a
boosted model's stages, the final prediction. A reviewer compares members side by side and
reads votes per class, so consecutive member steps become one table (a row per member) and
tree statistics one table (a row per class); probabilities are named by the model's classes
when the bundle knows them. Anything of another shape is shown as its JSON, never dropped.
Pure: a bundle's dicts in, frozen rows and cells out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

VECTOR_COLUMNS = 50  # features of a transform's output shown in its table; the bundle's JSON has them all


@dataclass(frozen=True)
class Row:
    header: str
    cells: tuple[Any, ...]  # scalars, one per column; None where a row has no such value


@dataclass(frozen=True)
class Table:
    corner: str  # what the row headers are: "member", "class", ...
    columns: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Block:
    """One item of the decision chain as listed: a step, or a run of ensemble members."""

    kind: str  # transform | member | trees | predict, as the chain records it
    steps: tuple[str, ...]  # the step names it shows, in chain order
    summary: str | None = None  # "100 trees", "label: refer"
    table: Table | None = None
    raw: str | None = None  # the output as JSON, when it has no tabular shape


def chain_blocks(steps: Sequence[Mapping[str, Any]], classes: Sequence[Any] | None) -> list[Block]:
    """The chain in order, with each run of consecutive member steps merged into one block."""
    blocks: list[Block] = []
    index = 0
    while index < len(steps):
        if steps[index].get("kind") == "member":
            end = index
            while end < len(steps) and steps[end].get("kind") == "member":
                end += 1
            blocks.append(_members(steps[index:end], classes))
            index = end
        else:
            blocks.append(_step(steps[index], classes))
            index += 1
    return blocks


def facts(values: Mapping[str, Any], classes: Sequence[Any] | None) -> Table:
    """Named values (a bundle's inputs, outputs, request, lineage) as one row each; probabilities per class."""
    rows: list[Row] = []
    for name, value in values.items():
        named = _probabilities(value, classes) if name == "probabilities" else None
        if named is not None:
            rows += [Row(f"probability of {label}", (p,)) for label, p in named.items()]
        else:
            rows.append(Row(name, (value if _scalar(value) else compact(value),)))
    return Table("name", ("value",), tuple(rows))


def answer(outputs: Mapping[str, Any], kind: str) -> Any:
    """The model's answer a reviewer accepts: a classifier's label, a regressor's first output."""
    if kind == "classification":
        return outputs.get("label")
    return next(iter(outputs.values()), None)


def compact(value: Any) -> str:
    return orjson.dumps(value).decode()


def _step(step: Mapping[str, Any], classes: Sequence[Any] | None) -> Block:
    name, kind, output = str(step.get("step")), str(step.get("kind")), step.get("output")
    if kind == "transform" and _vector(output):
        shown = output[:VECTOR_COLUMNS]
        summary = f"{len(output)} features" + (f", the first {len(shown)} shown" if len(shown) < len(output) else "")
        return Block(kind, (name,), summary,
                     Table("feature", tuple(str(i) for i in range(1, len(shown) + 1)), (Row("value", tuple(shown)),)))
    if kind == "trees" and isinstance(output, Mapping):
        table = _statistics(output)
        if table is not None:
            return Block(kind, (name,), _count(output), table)
    if kind == "predict" and isinstance(output, Mapping):
        said = {key: value for key, value in output.items() if key != "probabilities"}
        named = _probabilities(output["probabilities"], classes) if "probabilities" in output else {}
        if named is not None and all(_scalar(value) for value in said.values()):
            summary = ", ".join(f"{key}: {value}" for key, value in said.items()) or None
            table = Table("class", ("probability",), tuple(Row(label, (p,)) for label, p in named.items())) \
                if named else None
            return Block(kind, (name,), summary, table)
    return Block(kind, (name,), raw=orjson.dumps(output, option=orjson.OPT_INDENT_2).decode())


def _members(steps: Sequence[Mapping[str, Any]], classes: Sequence[Any] | None) -> Block:
    """Members side by side: a row per member, a column per class probability or value."""
    names = tuple(str(step.get("step")) for step in steps)
    cells = [_cells(step.get("output"), classes) for step in steps]
    known = [row for row in cells if row is not None]
    if len(known) < len(cells):
        return Block("member", names, raw=orjson.dumps([dict(step) for step in steps],
                                                        option=orjson.OPT_INDENT_2).decode())
    columns = tuple(dict.fromkeys(column for row in known for column in row))
    rows = tuple(Row(name, tuple(row.get(column) for column in columns)) for name, row in zip(names, known))
    return Block("member", names, f"{len(names)} members", Table("member", columns, rows))


def _cells(output: Any, classes: Sequence[Any] | None) -> dict[str, Any] | None:
    if not isinstance(output, Mapping):
        return None
    cells: dict[str, Any] = {}
    for key, value in output.items():
        named = _probabilities(value, classes) if key == "probabilities" else None
        if named is not None:
            cells.update({f"P({label})": p for label, p in named.items()})
        elif _scalar(value):
            cells[key] = value
        else:
            return None
    return cells


def _statistics(output: Mapping[str, Any]) -> Table | None:
    """Tree or stage statistics: a row per class when they are per class, else one row."""
    stats = {key: output[key] for key in sorted(output, key=lambda name: name != "votes") if key != "n"}  # votes first
    if stats and all(isinstance(value, Mapping) for value in stats.values()):
        labels = list(dict.fromkeys(label for value in stats.values() for label in value))
        if all(_scalar(cell) for value in stats.values() for cell in value.values()):
            return Table("class", tuple(stats), tuple(Row(str(label), tuple(stats[key].get(label) for key in stats))
                                                      for label in labels))
    if stats and all(_scalar(value) for value in stats.values()):
        return Table("trees", tuple(stats), (Row("all", tuple(stats.values())),))
    return None


def _count(output: Mapping[str, Any]) -> str | None:
    """How many trees voted, or stages added up (a boosted model's statistics carry its ``init``)."""
    if "n" not in output:
        return None
    return f"{output['n']} {'stages' if 'init' in output else 'trees'}"


def _probabilities(value: Any, classes: Sequence[Any] | None) -> dict[str, Any] | None:
    """A probability vector keyed by class label (by position when the classes are unknown)."""
    if not _vector(value):
        return None
    labels = [str(c) for c in classes] if classes is not None and len(classes) == len(value) \
        else [f"#{i}" for i in range(len(value))]
    return dict(zip(labels, value))


def _vector(value: Any) -> bool:
    return isinstance(value, list) and all(_scalar(item) and not isinstance(item, str) for item in value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
