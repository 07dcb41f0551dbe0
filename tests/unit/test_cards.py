"""Model cards: what parses, that every refusal names its field (and line), and what renders."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest

from threadline.domain import errors, models
from threadline.governance import cards

FULL: dict[str, Any] = {
    "model_details": {
        "overview": "Scores card transactions for fraud.",
        "documentation": "See the design doc.",
        "owners": [{"name": "Risk team", "contact": "risk@example.com"}],
        "licenses": ["Apache-2.0"],
        "references": ["https://example.com/paper"],
        "citations": ["Doe et al. 2024"],
        "version_notes": "Retrained on Q2 data.",
    },
    "intended_use": {"primary_uses": ["fraud triage"], "primary_users": ["analysts"],
                     "out_of_scope_uses": ["credit decisions"]},
    "factors": {"relevant_factors": ["merchant category"], "evaluation_factors": ["region"]},
    "metrics": {"performance_measures": ["F1"], "decision_thresholds": ["0.6"],
                "variation_approaches": ["bootstrap"]},
    "evaluation_data": {"description": "Holdout.", "preprocessing": "Deduplicated.",
                        "datasets": [{"name": "holdout", "uri": "s3://d/holdout", "digest": "sha256:ab"}]},
    "training_data": {"datasets": [{"name": "train", "uri": "s3://d/train"}]},
    "quantitative_analysis": {
        "summary": "Good enough.",
        "performance_metrics": [{"name": "f1", "value": 0.91, "slice": "EU", "threshold": 0.85,
                                 "confidence_interval": [0.89, 0.93]}],
        "fairness": [{"attribute": "age", "group": "65+", "metric": "recall", "value": 0.88},
                     {"attribute": "age", "group": "18-25", "metric": "recall", "value": 0.9}],
        "max_disparity": 0.02,
    },
    "ethical_considerations": [{"name": "false positives block cards", "mitigation": "human review"}],
    "caveats_and_recommendations": {"caveats": ["not for ATMs"], "recommendations": ["retrain yearly"]},
}

CARD_YAML = """\
model_details:
  overview: Scores transactions.
quantitative_analysis:
  max_disparity: high
intended_use:
  primary_uses: [triage]
"""


def model(name: str = "fraud-model") -> models.Model:
    return models.Model(name=name, owner="risk-team", risk_tier=models.RiskTier.HIGH,
                        description="Fraud scoring.", created_by="alice",
                        created_at=datetime(2024, 5, 1, tzinfo=timezone.utc))


def version(**changes: Any) -> models.ModelVersion:
    values: dict[str, Any] = dict(
        model="fraud-model", version=7, artifact_digest="ab" * 32, artifact_size=10,
        flavor=models.Flavor.SKLEARN, artifact_format=models.ArtifactFormat.SKOPS, trusted=False,
        signature=models.Signature(inputs=(models.TensorSpec("x", "FP32", (-1, 3)),)),
        has_profile=False, metrics={"f1": 0.91, "auc": 0.97}, card={},
        lineage=models.Lineage(training_data=(models.DataRef("s3://d/train", "sha256:cd"),),
                               code_repo="https://git.example.com/fraud", code_commit="abc123",
                               parent_version=6),
        status="staging", description="", created_by="bob",
        created_at=datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc))
    values.update(changes)
    return models.ModelVersion(**values)


def refusal(text: str, source: str = "card.yaml") -> str:
    with pytest.raises(errors.InvalidInput) as caught:
        cards.load_card_yaml(text, source)
    return str(caught.value)


# ---- parsing -----------------------------------------------------------------------------------

def test_a_full_card_round_trips() -> None:
    card = cards.parse_card(FULL)
    assert card.model_details.owners[0].contact == "risk@example.com"
    assert card.quantitative_analysis.performance_metrics[0].confidence_interval == (0.89, 0.93)
    assert cards.parse_card(card.model_dump()) == card
    assert cards.parse_card(card.model_dump(mode="json")) == card
    assert cards.parse_card({}) == cards.ModelCard()


def test_every_problem_is_listed_with_its_path_and_the_first_is_the_field() -> None:
    data = {"model_details": {"overviw": "x", "owners": [{"contact": "a@b"}]},
            "quantitative_analysis": {"performance_metrics": [{"name": "f1", "value": "0.9"}]}}
    with pytest.raises(errors.InvalidInput) as caught:
        cards.parse_card(data)
    message = str(caught.value)
    assert caught.value.field == "card.model_details.owners[0].name"  # pydantic reports extras last
    assert message.splitlines()[0] == "card.model_details.owners[0].name: required, but missing"
    assert "card.model_details.overviw: unknown field; did you mean overview?" in message
    assert 'card.quantitative_analysis.performance_metrics[0].value: input should be a valid number, not "0.9"' \
        in message


def test_an_unknown_section_lists_the_sections() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        cards.parse_card({"limitations": ["x"]})
    assert caught.value.field == "card.limitations"
    assert "the fields here are model_details, intended_use" in str(caught.value)


@pytest.mark.parametrize(("data", "expected"), [
    ({"model_details": {"overview": "x" * (cards.MAX_TEXT + 1)}}, "at most 10000 characters"),
    ({"intended_use": {"primary_uses": ["x"] * (cards.MAX_ITEMS + 1)}}, "at most 100 items"),
    ({"quantitative_analysis": {"max_disparity": -0.1}}, "greater than or equal to 0"),
    ({"quantitative_analysis": {"performance_metrics": [
        {"name": "f1", "value": 1, "confidence_interval": [0.9, 0.8]}]}}, "lower bound 0.9 is above"),
    ({"model_details": {"overview": b"bytes"}}, "valid string"),
    ({"quantitative_analysis": {"max_disparity": True}}, "valid number, not true"),
])
def test_bounds_and_types_are_enforced(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(errors.InvalidInput, match=re.escape(expected)):
        cards.parse_card(data)


def test_past_twenty_problems_the_rest_are_counted() -> None:
    data = {"intended_use": {"primary_uses": list(range(25))}}
    with pytest.raises(errors.InvalidInput) as caught:
        cards.parse_card(data)
    lines = str(caught.value).splitlines()
    assert len(lines) == 21 and lines[-1] == "card: ... and 5 more problems"
    assert lines[0] == "card.intended_use.primary_uses[0]: input should be a valid string, not 0"
    text = "intended_use:\n  primary_uses: [" + ", ".join(map(str, range(25))) + "]\n"
    assert refusal(text).splitlines()[-1] == "card.yaml: ... and 5 more problems"


def test_a_card_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="card: must be a mapping of sections, not a list"):
        cards.parse_card([])  # type: ignore[arg-type]


# ---- YAML --------------------------------------------------------------------------------------

def test_a_yaml_card_loads() -> None:
    card = cards.load_card_yaml("model_details:\n  overview: Scores.\n  owners: [{name: risk}]\n", "c.yaml")
    assert card.model_details.overview == "Scores."
    assert card.model_details.owners[0].name == "risk"


def test_a_wrong_type_names_file_line_and_field() -> None:
    assert refusal(CARD_YAML) == ('card.yaml:4: quantitative_analysis.max_disparity: '
                                  'input should be a valid number, not "high"')


def test_problems_are_sorted_by_line() -> None:
    text = "intended_use:\n  primary_use: [x]\nmodel_details:\n  overview: 7\n"
    assert refusal(text).splitlines() == [
        "card.yaml:2: intended_use.primary_use: unknown field; did you mean primary_uses?",
        "card.yaml:4: model_details.overview: input should be a valid string, not 7"]


def test_a_duplicate_key_is_refused_with_both_lines() -> None:
    text = "model_details:\n  overview: a\n  overview: b\n"
    assert refusal(text) == "card.yaml:3: model_details.overview: duplicate key (first at line 2)"


def test_invalid_yaml_names_the_line() -> None:
    assert refusal("model_details:\n  overview: [unclosed\nfactors: {}\n").startswith("card.yaml:3: invalid YAML")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_document_is_refused_clearly(text: str) -> None:
    assert re.fullmatch(r"card.yaml:[12]: a model card must be a mapping, not an empty document", refusal(text))


def test_a_card_must_be_one_mapping() -> None:
    assert refusal("- a\n- b\n") == "card.yaml:1: a model card must be a mapping, not a list"
    assert "expected a single document" in refusal("factors: {}\n---\nmetrics: {}\n")


def test_an_oversized_card_is_refused_before_parsing() -> None:
    with pytest.raises(errors.PayloadTooLarge, match="card.yaml: larger than the limit of 1048576 bytes"):
        cards.load_card_yaml("#" * (cards.MAX_BYTES + 1), "card.yaml")


# ---- required fields ---------------------------------------------------------------------------

REQUIRED = ["model_details.overview", "intended_use.out_of_scope_uses", "quantitative_analysis.fairness",
            "ethical_considerations", "caveats_and_recommendations"]


def test_missing_fields_of_an_empty_and_a_full_card() -> None:
    assert cards.missing_fields(cards.ModelCard(), REQUIRED) == REQUIRED
    assert cards.missing_fields(cards.parse_card(FULL), REQUIRED) == []
    assert cards.missing_fields(cards.ModelCard(), []) == []


def test_whitespace_and_empty_sections_count_as_missing() -> None:
    card = cards.parse_card({"model_details": {"overview": "  \n"}, "factors": {"relevant_factors": ["x"]}})
    assert cards.missing_fields(card, ["model_details.overview", "model_details", "factors", "metrics"]) == [
        "model_details.overview", "model_details", "metrics"]


def test_an_unknown_required_path_is_refused_with_the_sections() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        cards.missing_fields(cards.ModelCard(), ["model_detail.overview"])
    message = str(caught.value)
    assert "model_detail.overview (did you mean model_details.overview?)" in message
    assert "the sections are model_details, intended_use, factors" in message


def test_field_paths_name_sections_and_their_fields() -> None:
    assert {"model_details", "model_details.owners", "ethical_considerations",
            "quantitative_analysis.max_disparity", "training_data.datasets"} <= set(cards.FIELD_PATHS)
    assert "ethical_considerations.name" not in cards.FIELD_PATHS
    assert len(set(cards.FIELD_PATHS)) == len(cards.FIELD_PATHS)


# ---- rendering ---------------------------------------------------------------------------------

HEADINGS = ["Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
            "Quantitative analysis", "Ethical considerations", "Caveats and recommendations"]


def test_markdown_shows_the_header_and_every_section() -> None:
    text = cards.render_markdown(cards.parse_card(FULL), model(), version())
    assert text.startswith("# Model card: fraud-model@7\n")
    for expected in ["| Owner team | risk-team |", "| Risk tier | high |", "| Status | staging |",
                     "| Artifact | sha256:" + "ab" * 32 + " |", "| Flavor | sklearn (skops) |",
                     "| Created by | bob |", "| Created at | 2024-06-01T12:00:00+00:00 |",
                     "| auc | 0.97 |\n| f1 | 0.91 |", "| s3://d/train | sha256:cd |",
                     "https://git.example.com/fraud @ abc123", "fraud-model@6"]:
        assert expected in text, expected
    for heading in HEADINGS:
        assert f"\n## {heading}\n" in text
    assert "Not documented" not in text
    assert "| f1 | 0.91 | EU | 0.85 | \\[0.89, 0.93] |" in text


def test_empty_sections_show_the_gap() -> None:
    text = cards.render_markdown(cards.ModelCard(), model(), version(metrics={}, lineage=models.Lineage()))
    assert text.count("_Not documented_") == len(HEADINGS)
    assert "_None registered_" in text and "_Not recorded_" in text
    page = cards.render_html(cards.ModelCard(), model(), version())
    assert page.count('<p class="gap">Not documented</p>') == len(HEADINGS)


def test_markdown_table_cells_cannot_break_the_table() -> None:
    card = cards.parse_card({"model_details": {"owners": [{"name": "a | b", "contact": "line1\nline2"}]}})
    text = cards.render_markdown(card, model(), version())
    assert "| a \\| b | line1<br>line2 |" in text


def test_markdown_user_text_cannot_add_headings_or_html() -> None:
    overview = "fine\n# Approved\n<script>alert(1)</script>\n1. x\n---\n\n    code"
    card = cards.parse_card({"model_details": {"overview": overview, "licenses": ["- nested\n## heading"]}})
    text = cards.render_markdown(card, model(), version())
    assert "\n# Approved" not in text and "\\# Approved" in text
    assert "<script>" not in text
    assert "\n## heading" not in text
    assert "\n1\\. x" in text and "\n\\---\n" in text and "\n    code" not in text


def test_markdown_leaves_ordinary_text_readable() -> None:
    card = cards.parse_card({"model_details": {"overview": "F1 of 0.91 - see notes (v2)."}})
    assert "\nF1 of 0.91 - see notes (v2).\n" in cards.render_markdown(card, model(), version())


def test_html_is_self_contained_and_escapes_every_user_text() -> None:
    hostile = '<script>alert("x")</script>'
    card = cards.parse_card({
        "model_details": {"overview": hostile, "owners": [{"name": hostile}], "licenses": [hostile]},
        "quantitative_analysis": {"fairness": [{"attribute": hostile, "group": "g", "metric": "m", "value": 1}]},
    })
    page = cards.render_html(card, model(), version(status=hostile, created_by=hostile,
                                                       metrics={hostile: 1.0}))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)
    assert "<style>" in page and "default-src 'none'" in page
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    assert "sha256:" + "ab" * 32 in page and "risk-team" in page and "fraud-model@7" in page
