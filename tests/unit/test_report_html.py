"""The drift report page: self-contained, one accessible chart per feature, user text escaped."""

from __future__ import annotations

import re
import xml.dom.minidom
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pytest

from threadline.monitoring import drift, histograms, report_html

HOSTILE = "<script>alert(1)</script>"
START = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def _features() -> tuple[list[drift.FeatureDrift], dict[str, histograms.Histogram]]:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=800)
    current = rng.normal(0.8, size=400)
    edges = np.quantile(reference, np.linspace(0, 1, 11))
    counts = np.histogram(reference, bins=edges)[0]
    numeric = drift.numeric(reference, current, method="psi", reference_edges=edges,
                            feature=HOSTILE)
    ref_cats = {"red": 40, "blue": 30, '"><img src=x onerror=alert(2)>': 5}
    cur_cats = {"red": 10, "blue": 35, "green": 3}
    categorical = drift.categorical(ref_cats, cur_cats, feature="colour")
    missing = drift.numeric(reference, np.array([np.nan]), feature="age")
    charts = {
        HOSTILE: histograms.numeric(edges, counts.tolist(), current, feature=HOSTILE),
        "colour": histograms.categorical(ref_cats, cur_cats, feature="colour"),
        "age": histograms.numeric(edges, counts.tolist(), np.array([np.nan]), feature="age"),
    }
    return [numeric, categorical, missing], charts


def _page() -> str:
    features, charts = _features()
    summary = {"deployment": "fraud-scorer", "environment": "production", "model": "fraud-model",
               "version": 7, "start": START, "end": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
               "rows": 1234, "problems": ["part-3.parquet: unreadable, skipped"],
               "git_commit": "abc123"}
    return report_html.render("Drift of fraud-scorer", summary, features, charts)


class _Collector(HTMLParser):
    """Start tags and their attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)


def _parsed(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def test_one_svg_per_feature_with_accessible_names() -> None:
    page = _page()
    parsed = _parsed(page)
    assert parsed.tags.count("svg") == 3
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.DOTALL)
    assert len(svgs) == 3
    for index, svg in enumerate(svgs):
        assert 'role="img"' in svg
        assert f'aria-labelledby="h{index}-title h{index}-desc"' in svg
        assert f'<title id="h{index}-title">Histogram of ' in svg
        # Well-formed as XML too, so it can be saved as an .svg file.
        standalone = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
        xml.dom.minidom.parseString(standalone)
    numeric, categorical, _ = svgs
    bins = len(_features()[1][HOSTILE].labels)
    assert bins == 11  # ten reference bins and the overflow of the shifted window
    assert numeric.count('fill="#4c72b0"') == bins + 1  # a reference bar per bin, the legend key
    assert numeric.count('fill="#dd8452"') == bins + 1
    assert "reference (n=800)" in numeric and "current (n=400)" in numeric
    assert "share of values" in numeric and "value (reference bins)" in numeric
    assert ">red<" in categorical and "category" in categorical


def test_nothing_is_loaded_from_outside() -> None:
    page = _page()
    parsed = _parsed(page)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parsed.tags)
    for name, value in parsed.attributes:
        if name in ("src", "href", "xlink:href", "action"):
            assert value is not None and value.startswith("#"), (name, value)
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # a browser refuses anything that slipped in


def test_user_text_is_escaped() -> None:
    page = _page()
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    parsed = _parsed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    hostile_title = report_html.render(HOSTILE, {"deployment": HOSTILE}, [], {})
    assert HOSTILE not in hostile_title and "<script" not in hostile_title


def test_summary_and_table() -> None:
    page = _page()
    assert "fraud-scorer" in page and "fraud-model@7" in page
    assert "2026-03-01T11:00:00+00:00 to 2026-03-01T12:00:00+00:00" in page
    assert "<dd>1,234</dd>" in page and "Git commit" in page
    assert "part-3.parquet: unreadable, skipped" in page
    # Two features with data, both drifted; the third had none.
    assert "2 of 2 (100%)" in page and "Dataset drift detected" in page
    assert "<dt>Without data</dt><dd>age</dd>" in page
    table = page[page.index("<h2>Drift by feature</h2>"):page.index('<h2 id="features">')]
    assert table.count("<tr>") == 4  # header and three features
    assert "psi" in table and "chisquare" in table and "p-value below 0.05" in table
    assert "above 0.2" in table and "no data" in table
    for index in range(3):
        assert f'href="#feature-{index}"' in table and f'id="feature-{index}"' in page


def test_given_dataset_verdict_and_missing_histogram() -> None:
    features, _ = _features()
    verdict = drift.dataset(features[1:], share=0.9)
    page = report_html.render("r", {"dataset": verdict}, features[1:], {})
    assert verdict.drifted and "the dataset drifts at 90% or more" in page
    assert "drifts at 90% or more" in report_html.render("r", {"share": 0.9}, features, {})
    assert "<svg" not in page and page.count("No histogram for this feature.") == 2
    nothing = report_html.render("r", {}, [features[2]], {})
    assert "No data: no feature could be compared." in nothing


def test_empty_histogram_draws_a_placeholder() -> None:
    empty = histograms.categorical({}, {}, feature="c")
    svg = report_html.chart(empty, 4)
    assert svg.startswith("<svg") and "no data to draw" in svg and 'id="h4-title"' in svg


@pytest.mark.parametrize("value", [float("inf"), float("nan"), None, True, 0.000123456])
def test_values_are_shown_readably(value: object) -> None:
    shown = report_html._fmt(value)
    assert shown in {"∞", "NaN", "—", "yes", "0.0001235"}
