"""Escalation rules (``domain.escalation_rules``) evaluated on a whole batch with numpy."""

from __future__ import annotations

import operator
from typing import Any, Callable, Mapping

import numpy as np

from threadline.domain.escalation_rules import Rule

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def mask(rule: Rule, columns: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
    """Which rows the rule holds for; a column the model does not have (or a 2-D one) matches nothing."""
    column = columns.get(rule.name)
    if column is None or column.ndim != 1 or len(column) != rows:
        return np.zeros(rows, dtype=bool)
    compare = _OPERATORS[rule.op]
    if isinstance(rule.value, float):
        if column.dtype.kind not in "biuf":
            return np.zeros(rows, dtype=bool)
        return np.asarray(compare(column.astype(float), rule.value), dtype=bool)
    return np.asarray(compare(column.astype(str), rule.value), dtype=bool)


def matches(rules: tuple[Rule, ...], inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
            confidence: np.ndarray | None, rows: int) -> tuple[np.ndarray, list[str | None]]:
    """Rows any rule holds for, and per row the first rule that did (its reason)."""
    columns: dict[str, np.ndarray] = {**inputs, **outputs}
    if confidence is not None:
        columns["confidence"] = confidence
    hit = np.zeros(rows, dtype=bool)
    reasons: list[str | None] = [None] * rows
    for rule in rules:
        new = mask(rule, columns, rows) & ~hit
        for row in np.flatnonzero(new):
            reasons[row] = f"rule: {rule.text}"
        hit |= new
    return hit, reasons
