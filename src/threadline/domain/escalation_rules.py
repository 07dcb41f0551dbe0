"""Escalation rules: predictions a person must see whatever the model's confidence.

A spec lists rules as short comparisons, ``"label == fraud"`` or ``"amount > 10000"``: the name
is an input of the model, one of its outputs (``label``, ``prediction``...) or ``confidence``;
the operator is one of ``== != > >= < <=``; the value a number or a word. The same parser checks
a spec when it is loaded (so a typo is an error at its file and line, not a silent no-match)
and builds the serving process's rules (``serving.escalation`` evaluates them on batches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.:-]*)\s*(==|!=|>=|<=|>|<)\s*(\S(?:.*\S)?)\s*$")


@dataclass(frozen=True)
class Rule:
    name: str
    op: str
    value: float | str
    text: str


def parse(text: str) -> Rule:
    """``"amount > 10000"`` -> a Rule; ValueError saying what a rule looks like otherwise."""
    match = _RULE.match(text)
    if match is None:
        raise ValueError(f"invalid escalation rule {text!r}: write NAME OP VALUE, e.g. \"label == fraud\" or "
                         "\"amount > 10000\" (OP is one of == != > >= < <=)")
    name, op, raw = match.groups()
    try:
        value: float | str = float(raw)
    except ValueError:
        if op not in ("==", "!="):
            raise ValueError(f"invalid escalation rule {text!r}: {op} needs a number") from None
        value = raw.strip("\"'")
    return Rule(name, op, value, f"{name} {op} {raw}")
