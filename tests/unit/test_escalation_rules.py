"""Escalation rules: parsed once from the spec, evaluated on whole batches in the serving process."""

from __future__ import annotations

import numpy as np
import pytest

from threadline.domain import errors
from threadline.domain.escalation_rules import parse
from threadline.gitops import documents
from threadline.serving import escalation


def test_rules_parse_numbers_and_words() -> None:
    assert parse("amount > 10000").value == 10000.0
    assert parse("label == 'fraud'").value == "fraud"
    assert parse("  confidence<=0.7 ").text == "confidence <= 0.7"


@pytest.mark.parametrize("bad", ["amount", "amount >> 3", "label > fraud", "== 3", "a ~ 3"])
def test_bad_rules_say_what_a_rule_looks_like(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid escalation rule"):
        parse(bad)


def test_rules_hold_row_by_row_and_name_the_first_that_held() -> None:
    rules = (parse("label == fraud"), parse("amount > 10000"), parse("confidence < 0.7"))
    inputs = {"amount": np.array([5.0, 20000.0, 1.0, 2.0])}
    outputs = {"label": np.array(["ok", "ok", "fraud", "ok"], dtype=object)}
    hit, reasons = escalation.matches(rules, inputs, outputs, np.array([0.9, 0.95, 0.6, 0.99]), 4)
    assert hit.tolist() == [False, True, True, False]
    assert reasons == [None, "rule: amount > 10000", "rule: label == fraud", None]


def test_a_rule_on_a_column_the_model_lacks_or_of_the_wrong_type_matches_nothing() -> None:
    rules = (parse("missing == 1"), parse("label > 3"))
    hit, _ = escalation.matches(rules, {}, {"label": np.array(["a", "b"], dtype=object)}, None, 2)
    assert hit.tolist() == [False, False]


def test_a_bad_rule_in_a_spec_names_its_file_and_line() -> None:
    text = ("apiVersion: threadline/v1\nkind: ModelDeployment\nmetadata: {name: s, environment: staging, owner: t}\n"
            "spec:\n  model: m\n  version: 1\n  escalation:\n    confidenceBelow: 0.5\n    queue: q\n"
            "    rules: [\"amount >> 3\"]\n")
    with pytest.raises(errors.InvalidInput) as caught:
        documents.load_text(text, "deploy.yaml")
    assert "deploy.yaml:10" in str(caught.value) and "invalid escalation rule" in str(caught.value)
