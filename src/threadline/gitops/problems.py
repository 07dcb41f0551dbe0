"""What is wrong with a YAML document, as ``{source}:{line}: {field.path}: {what}`` lines.

Pydantic knows the field path of a problem and PyYAML's composed nodes know where each field
was written; this module joins the two, so a person reads the line to fix instead of a
traceback. The node of a mapping entry is reported at its key: that is the line a field is
on, and for a missing field its parent's key is the closest line that exists.
"""

from __future__ import annotations

import difflib
import json
import typing
from typing import Any

import pydantic
import yaml

from threadline.gitops import spec

_MAX_PER_DOCUMENT = 20  # past this, more lines help nobody
_YAML_TYPES = {list: "a list", dict: "a mapping", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def describe(value: object) -> str:
    """A YAML person's word for the type of ``value``."""
    return _YAML_TYPES.get(type(value), type(value).__name__)


def explain(exc: pydantic.ValidationError, node: yaml.Node, source: str,
            root: type[pydantic.BaseModel] = spec.ModelDeployment) -> list[str]:
    """One line per problem pydantic found in the document composed as ``node``, by line.

    ``root`` is the model the document was validated as: unknown-field hints list its fields.
    """
    found, omitted = messages(exc, root)
    shown = sorted(((line(node, loc), path(loc), what) for loc, what in found), key=lambda problem: problem[0])
    lines = [f"{source}:{number}: {where or '(document)'}: {what}" for number, where, what in shown]
    if omitted:
        lines.append(f"{source}: ... and {omitted} more problems")
    return lines


def messages(exc: pydantic.ValidationError, root: type[pydantic.BaseModel]
             ) -> tuple[list[tuple[tuple[Any, ...], str]], int]:
    """(location, what is wrong) for the first problems, and how many more were left out."""
    found = exc.errors(include_url=False)
    shown = [(tuple(e["loc"]), _message(e, root)) for e in found[:_MAX_PER_DOCUMENT]]
    return shown, max(0, len(found) - _MAX_PER_DOCUMENT)


def yaml_error(exc: yaml.YAMLError, text: str, source: str) -> str:
    """The line a YAML syntax or construction error points at, and what it says."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        number = mark.line + 1
    else:  # a ReaderError (a control character) knows only its position in the text
        number = text[:getattr(exc, "position", 0)].count("\n") + 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, started = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and started is not None and started.line + 1 != number:
        context += f" that starts at line {started.line + 1}"
    return f"{source}:{number}: invalid YAML: {problem}" + (f" ({context})" if context else "")


def duplicate_keys(root: yaml.Node, source: str) -> list[str]:
    """PyYAML silently keeps the last of two equal keys; a spec with two ``replicas`` is an error.

    Run it before constructing the document: merge keys (``<<``) rewrite the nodes.
    """
    found, seen, stack = [], set(), [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:  # an alias: its node was checked where the anchor is
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                number = key.start_mark.line + 1
                if isinstance(key, yaml.ScalarNode) and key.value in first:
                    where = f"{source}:{number}: {path((*loc, key.value))}"
                    found.append((number, f"{where}: duplicate key (first at line {first[key.value]})"))
                elif isinstance(key, yaml.ScalarNode):
                    first[key.value] = number
                stack.append((value, (*loc, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, (*loc, index)) for index, item in enumerate(node.value)]
    return [message for _, message in sorted(found)]


def line(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest node on ``loc`` that exists; for a mapping entry, its key's."""
    number = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next((pair for pair in reversed(node.value) if pair[0].value == part), None)
            if entry is None:
                break
            number, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            number = node.start_mark.line + 1
        else:
            break
    return number


def path(loc: tuple[Any, ...]) -> str:
    """``("spec", "rollout", "steps", 1, "weight")`` -> ``spec.rollout.steps[1].weight``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for "the key itself was refused"
            text += f".{part}" if text else str(part)
    return text


def _message(error: Any, root: type[pydantic.BaseModel]) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return _unknown_field(error["loc"], root)
    message = error["msg"][0].lower() + error["msg"][1:]
    if isinstance(value, (str, int, float, bool)) or value is None:
        shown = json.dumps(value)  # YAML spelling: true, null, "7"
        return f"{message}, not {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return f"{message}, not {describe(value)}"


def _unknown_field(loc: tuple[Any, ...], root: type[pydantic.BaseModel]) -> str:
    known = _known_fields(loc[:-1], root)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown field; did you mean {close[0]}?"
    return f"unknown field; the fields here are {', '.join(known)}" if known else "unknown field"


def _known_fields(loc: tuple[Any, ...], root: type[pydantic.BaseModel]) -> list[str]:
    """The YAML keys the model at ``loc`` accepts, found by walking the model classes."""
    model: type[pydantic.BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        model = _model_in(field.annotation) if field else None
    return [f.alias or name for name, f in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return next(filter(None, map(_model_in, typing.get_args(annotation))), None)
