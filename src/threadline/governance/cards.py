"""Model cards: a fixed schema after Google's Model Card Toolkit, checked, queried and rendered.

A card is what a reviewer reads before approving a version, so it has a schema instead of being
free-form YAML: unknown fields are errors (a misspelt ``out_of_scope_use`` would otherwise pass
as documented), every text and list is bounded (a card is stored with every version and shown
in a browser), and numbers are never read from strings. ``missing_fields`` lets a policy name
the parts it requires by dotted path; the renderers show gaps as "Not documented" rather than
hiding them, because a missing section is exactly what a reviewer needs to see. Everything here
is pure: text and mappings in, values and strings out.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from threadline.domain import errors, models
from threadline.gitops import documents, problems

MAX_BYTES = 1 << 20
MAX_TEXT = 10_000
MAX_ITEMS = 100

# strict: YAML ``!!binary`` bytes are not text, and "0.93" or ``true`` is not a number.
Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT)]
Texts = Annotated[tuple[Text, ...], Field(max_length=MAX_ITEMS)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(_Part):
    name: Text
    contact: Text = ""


class ModelDetails(_Part):
    overview: Text = ""
    documentation: Text = ""
    owners: tuple[Owner, ...] = Field(default=(), max_length=MAX_ITEMS)
    licenses: Texts = ()
    references: Texts = ()  # URLs; rendered as text, never as links a reader might follow blindly
    citations: Texts = ()
    version_notes: Text = ""


class IntendedUse(_Part):
    primary_uses: Texts = ()
    primary_users: Texts = ()
    out_of_scope_uses: Texts = ()


class Factors(_Part):
    relevant_factors: Texts = ()
    evaluation_factors: Texts = ()


class Metrics(_Part):
    performance_measures: Texts = ()
    decision_thresholds: Texts = ()
    variation_approaches: Texts = ()


class Dataset(_Part):
    name: Text
    uri: Text = ""
    digest: Text | None = None
    description: Text = ""


class Data(_Part):
    description: Text = ""
    datasets: tuple[Dataset, ...] = Field(default=(), max_length=MAX_ITEMS)
    preprocessing: Text = ""


class PerformanceMetric(_Part):
    name: Text
    value: Number
    slice: Text | None = None
    threshold: Number | None = None
    confidence_interval: tuple[Number, Number] | None = None

    @pydantic.field_validator("confidence_interval")
    @classmethod
    def _ordered(cls, interval: tuple[float, float] | None) -> tuple[float, float] | None:
        if interval is not None and interval[0] > interval[1]:
            raise ValueError(f"the lower bound {interval[0]:g} is above the upper bound {interval[1]:g}")
        return interval


class FairnessResult(_Part):
    """One metric for one group of one sensitive attribute, e.g. recall for age 65+."""

    attribute: Text
    group: Text
    metric: Text
    value: Number


class QuantitativeAnalysis(_Part):
    summary: Text = ""
    performance_metrics: tuple[PerformanceMetric, ...] = Field(default=(), max_length=MAX_ITEMS)
    fairness: tuple[FairnessResult, ...] = Field(default=(), max_length=MAX_ITEMS)
    max_disparity: Annotated[Number, Field(ge=0)] | None = None


class Risk(_Part):
    name: Text
    mitigation: Text = ""


class CaveatsAndRecommendations(_Part):
    caveats: Texts = ()
    recommendations: Texts = ()


class ModelCard(_Part):
    """The whole card; every section is optional so a card can be filled in over time."""

    model_details: ModelDetails = ModelDetails()
    intended_use: IntendedUse = IntendedUse()
    factors: Factors = Factors()
    metrics: Metrics = Metrics()
    evaluation_data: Data = Data()
    training_data: Data = Data()
    quantitative_analysis: QuantitativeAnalysis = QuantitativeAnalysis()
    ethical_considerations: tuple[Risk, ...] = Field(default=(), max_length=MAX_ITEMS)
    caveats_and_recommendations: CaveatsAndRecommendations = CaveatsAndRecommendations()


def _paths() -> tuple[str, ...]:
    found: list[str] = []
    for section, info in ModelCard.model_fields.items():
        found.append(section)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            found += [f"{section}.{name}" for name in info.annotation.model_fields]
    return tuple(found)


FIELD_PATHS: tuple[str, ...] = _paths()
SECTIONS: tuple[str, ...] = tuple(ModelCard.model_fields)


# ---- reading ---------------------------------------------------------------------------------

def parse_card(data: Mapping[str, Any]) -> ModelCard:
    """A card from a JSON-like mapping (an API body), or InvalidInput listing every problem.

    Each problem is one ``card.<path>: <what is wrong>`` line; ``field`` is the first path.
    """
    if not isinstance(data, Mapping):
        raise errors.InvalidInput(f"must be a mapping of sections, not {problems.describe(data)}",
                                  field="card")
    try:
        return ModelCard.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        found, omitted = problems.messages(exc, ModelCard)
    paths = [f"card.{problems.path(loc)}" if loc else "card" for loc, _ in found]
    # InvalidInput prefixes the message with "field: ", which is exactly the first line's start.
    lines = [found[0][1], *(f"{where}: {what}" for where, (_, what) in zip(paths[1:], found[1:]))]
    if omitted:
        lines.append(f"card: ... and {omitted} more problems")
    raise errors.InvalidInput("\n".join(lines), field=paths[0])


def load_card_yaml(text: str, source: str) -> ModelCard:
    """A card from one YAML document; every problem is a ``source:line: field: what`` line."""
    return documents.load_one(text, source, ModelCard, what="a model card", max_bytes=MAX_BYTES)


# ---- querying --------------------------------------------------------------------------------

def missing_fields(card: ModelCard, required: Sequence[str]) -> list[str]:
    """The ``required`` dotted paths whose value is empty, in the order given.

    An unknown path is refused rather than reported missing: a policy that misspells a path
    would otherwise block every version forever, or (if checked the other way) none.
    """
    unknown = [_hint(path) for path in required if path not in FIELD_PATHS]
    if unknown:
        raise errors.InvalidInput(f"unknown model card field {', '.join(unknown)}; the sections are "
                                  f"{', '.join(SECTIONS)}", field="required")
    return [path for path in dict.fromkeys(required) if _empty(_value(card, path))]


def _hint(path: str) -> str:
    close = difflib.get_close_matches(path, FIELD_PATHS, n=1)
    return f"{path} (did you mean {close[0]}?)" if close else path


def _value(card: ModelCard, path: str) -> Any:
    value: Any = card
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _empty(value: Any) -> bool:
    """None, blank text, an empty list, or a section whose every field is empty; 0.0 is a value."""
    if isinstance(value, BaseModel):
        return all(_empty(getattr(value, name)) for name in type(value).model_fields)
    if isinstance(value, str):
        return not value.strip()
    return value is None or value == ()


# ---- rendering -------------------------------------------------------------------------------
# Both renderers draw the same outline, so Markdown and HTML can never disagree on content.

@dataclass(frozen=True)
class _Paragraph:
    label: str
    text: str


@dataclass(frozen=True)
class _Bullets:
    label: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    label: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


_Block = _Paragraph | _Bullets | _Table


@dataclass(frozen=True)
class _Section:
    title: str
    blocks: tuple[_Block, ...]
    empty: str = "Not documented"


def _outline(card: ModelCard, model: models.Model, version: models.ModelVersion
             ) -> tuple[str, list[_Section]]:
    title = f"Model card: {model.name}@{version.version}"
    return title, [*_header(model, version), *(_card_section(card, name) for name in SECTIONS)]


def _header(model: models.Model, version: models.ModelVersion) -> list[_Section]:
    facts = (("Model", f"{model.name}@{version.version}"), ("Owner team", model.owner),
             ("Risk tier", model.risk_tier.value), ("Status", version.status),
             ("Artifact", "sha256:" + version.artifact_digest.removeprefix("sha256:")),
             ("Flavor", f"{version.flavor.value} ({version.artifact_format.value})"),
             ("Created by", version.created_by), ("Created at", version.created_at.isoformat()))
    summary: list[_Block] = [_Table("", ("Property", "Value"), facts)]
    summary += [_Paragraph(label, text) for label, text in (
        ("Model description", model.description), ("Version description", version.description)) if text]
    metrics = tuple((name, _format(value)) for name, value in sorted(version.metrics.items()))
    lineage = version.lineage
    origin: list[_Block] = []
    if lineage.training_data:
        origin.append(_Table("Training data", ("URI", "Digest"),
                             tuple((ref.uri, ref.digest or "") for ref in lineage.training_data)))
    if lineage.code_repo or lineage.code_commit:
        origin.append(_Paragraph("Code", " @ ".join(filter(None, (lineage.code_repo, lineage.code_commit)))))
    if lineage.parent_version is not None:
        origin.append(_Paragraph("Parent version", f"{model.name}@{lineage.parent_version}"))
    if lineage.feature_pipeline:
        origin.append(_Paragraph("Feature pipeline", lineage.feature_pipeline))
    return [_Section("Summary", tuple(summary)),
            _Section("Registered metrics", (_Table("", ("Metric", "Value"), metrics),) if metrics else (),
                     empty="None registered"),
            _Section("Lineage", tuple(origin), empty="Not recorded")]


def _card_section(card: ModelCard, name: str) -> _Section:
    value = getattr(card, name)
    title = _label(name)
    if isinstance(value, tuple):
        return _Section(title, _blocks("", value))
    return _Section(title, tuple(block for field in type(value).model_fields
                                 for block in _blocks(_label(field), getattr(value, field))))


def _blocks(label: str, value: Any) -> tuple[_Block, ...]:
    """The block that shows one field, or none when it is empty (the section shows the gap)."""
    if _empty(value):
        return ()
    if isinstance(value, tuple) and isinstance(value[0], BaseModel):
        columns = tuple(type(value[0]).model_fields)
        rows = tuple(tuple(_format(getattr(item, column)) for column in columns) for item in value)
        return (_Table(label, tuple(_label(column) for column in columns), rows),)
    if isinstance(value, tuple):
        return (_Bullets(label, value),)
    return (_Paragraph(label, _format(value)),)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_format, value)) + "]"
    return str(value)


# ---- Markdown --------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[<>|#&~])")  # also < > &: a viewer must not render user HTML
_MD_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)  # four blanks would start a code block
# At a line's start: - and = underline the line before into a heading, + and 1. start lists.
_MD_LINE_START = re.compile(r"^(?:[-=]|\+(?=[ \t]|$)|\d{1,9}(?=[.)](?:[ \t]|$)))", re.MULTILINE)


def render_markdown(card: ModelCard, model: models.Model, version: models.ModelVersion) -> str:
    """The card as Markdown; user text is escaped so it cannot add headings, tables or HTML."""
    title, sections = _outline(card, model, version)
    out = [f"# {_md(title)}"]
    for section in sections:
        out.append(f"\n## {_md(section.title)}\n")
        if not section.blocks:
            out.append(f"_{section.empty}_")
        for block in section.blocks:
            if block.label:
                out.append(f"**{_md(block.label)}**\n")
            if isinstance(block, _Paragraph):
                out.append(_md(block.text) + "\n")
            elif isinstance(block, _Bullets):
                out.append("\n".join("- " + _md(item).replace("\n", "\n  ") for item in block.items) + "\n")
            else:
                out.append(_md_row(block.header))
                out.append("|" + "---|" * len(block.header))
                out += [_md_row(row) for row in block.rows]
                out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md(text: str) -> str:
    escaped = _MD_SPECIAL.sub(r"\\\1", text.replace("\r\n", "\n").replace("\r", "\n"))
    escaped = _MD_INDENT.sub("", escaped)
    # "1." becomes "1\." (the dot is the marker); every other marker gets its backslash in front.
    return _MD_LINE_START.sub(lambda found: found[0] + "\\" if found[0][0].isdigit() else "\\" + found[0],
                              escaped)


def _md_row(cells: Sequence[str]) -> str:
    # A table row is one line: a newline would end the table, so it becomes <br>.
    return "| " + " | ".join(_md(cell).replace("\n", "<br>") for cell in cells) + " |"


# ---- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;
line-height:1.5}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem;margin-bottom:.3rem}p,li,td{white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}.gap{color:#a33;font-style:italic}
"""


def render_html(card: ModelCard, model: models.Model, version: models.ModelVersion) -> str:
    """The card as one self-contained HTML page: inline CSS, no scripts, nothing fetched.

    Every piece of user text goes through ``html.escape``; the Content-Security-Policy is a
    second fence in case a future change forgets to.
    """
    title, sections = _outline(card, model, version)
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta http-equiv="Content-Security-Policy" '
           "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
           f"<title>{e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{e(title)}</h1>"]
    for section in sections:
        out.append(f"<section>\n<h2>{e(section.title)}</h2>")
        if not section.blocks:
            out.append(f'<p class="gap">{e(section.empty)}</p>')
        for block in section.blocks:
            if block.label:
                out.append(f"<h3>{e(block.label)}</h3>")
            if isinstance(block, _Paragraph):
                out.append(f"<p>{e(block.text)}</p>")
            elif isinstance(block, _Bullets):
                out.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>")
            else:
                head = "".join(f"<th>{e(cell)}</th>" for cell in block.header)
                rows = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>"
                               for row in block.rows)
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        out.append("</section>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
