"""The drift report as one self-contained HTML page: verdicts in, a string out.

The page is mailed, attached to tickets and opened from disk months later, often offline or
behind a proxy, so it loads nothing: no CDN, no web font, no script, no image file. Styles are
inline, charts are inline SVG, and a Content-Security-Policy of ``default-src 'none'`` makes a
browser refuse anything that slipped in. Hovering a bar shows its numbers through SVG
``<title>`` elements, and each chart's numbers are also in a table, for screen readers and for
copying.

Feature names and category labels come from users' data, so every piece of text that is not a
literal of this module goes through ``html.escape``; element ids are built from positions, never
from names.

This module renders and decides nothing: the verdicts are ``drift.FeatureDrift`` as computed,
the bars ``histograms.Histogram`` as binned.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from threadline.monitoring import drift
from threadline.monitoring.histograms import Histogram

FeatureRow = drift.FeatureDrift
"""A row of the feature table: the drift verdict of one feature, as ``drift`` returns it."""

REFERENCE_COLOUR = "#4c72b0"
CURRENT_COLOUR = "#dd8452"
"""Blue and orange: told apart with every common colour-vision deficiency."""

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 104
"""The chart's size and margins in SVG user units (the chart scales with the page)."""

LABEL_CHARS = 20
"""Bin labels longer than this are shortened on the axis; the bar's tooltip has them in full."""

TICK_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25)
"""Gridline spacings, as shares: the smallest that needs at most five steps is used."""

_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""Nothing loads from anywhere; only the inline stylesheet applies."""

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:60rem;padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.5rem}h2{font-size:1.25rem;margin-top:2rem}
h3{font-size:1.05rem;margin-bottom:.25rem}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.summary dt{font-weight:600}dl.summary dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border-bottom:1px solid #d0d0d5;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:.6rem .9rem;border-radius:.4rem;font-weight:600;margin:1rem 0}
.drift{background:#fde8e8;color:#8a1c1c}.stable{background:#e6f4ea;color:#1e5631}
.nodata{background:#eef0f3;color:#40464f}
.badge{display:inline-block;padding:0 .4rem;border-radius:.3rem;font-size:.85rem}
section.feature{border-top:1px solid #d0d0d5;margin-top:1.5rem}
svg{max-width:100%;height:auto;font-size:11px}
svg text{fill:#1d1d1f}
details{margin:.25rem 0 1rem}
""".strip()


def render(title: str, summary: Mapping[str, object], features: Sequence[FeatureRow],
           histograms: Mapping[str, Histogram]) -> str:
    """The report page: summary, a table of every feature, then each feature with its chart.

    ``summary`` keys, each optional: ``deployment``, ``environment``, ``model``, ``version``,
    ``start``, ``end``, ``rows``, ``problems`` (strings), and ``dataset`` (the
    ``drift.DatasetDrift`` verdict; without it, ``drift.dataset(features, share)`` with
    ``share`` from the summary, 0.5 by default). Other keys are listed as they are.
    ``histograms`` maps a feature name to its chart; a feature without one says so.
    """
    dataset = _dataset(summary, features)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _verdict(dataset),
        _summary(summary, dataset),
        _problems(summary.get("problems")),
        _table(features),
        '<h2 id="features">Features</h2>',
    ]
    parts.extend(_section(i, row, histograms.get(row.feature)) for i, row in enumerate(features))
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part) + "\n"


def chart(histogram: Histogram, index: int = 0) -> str:
    """One feature's histogram as an inline SVG bar chart: reference and current side by side.

    ``index`` makes the element ids unique within a page.
    """
    ident = f"h{index}"
    name = histogram.feature
    description = _description(histogram)
    # Upright labels need less room below the axis than slanted ones: the chart is shorter.
    height = HEIGHT if _tilted(histogram) else HEIGHT - BOTTOM + 48
    head = (f'<svg role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
            f'aria-labelledby="{ident}-title {ident}-desc">'
            f'<title id="{ident}-title">Histogram of {_e(name)}: reference against current</title>'
            f'<desc id="{ident}-desc">{_e(description)}</desc>')
    if not histogram.labels:
        return (head + f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle">'
                "no data to draw</text></svg>")
    return head + _axes(histogram) + _bars(histogram) + _legend(histogram) + "</svg>"


def _dataset(summary: Mapping[str, object],
             features: Sequence[FeatureRow]) -> drift.DatasetDrift:
    given = summary.get("dataset")
    if isinstance(given, drift.DatasetDrift):
        return given
    share = summary.get("share", 0.5)
    return drift.dataset(features, float(share) if isinstance(share, (int, float)) else 0.5)


def _verdict(dataset: drift.DatasetDrift) -> str:
    if dataset.considered == 0:
        return '<p class="verdict nodata">No data: no feature could be compared.</p>'
    counted = (f"{dataset.drifted_count} of {dataset.considered} features drifted "
               f"({dataset.drifted_share:.0%}; the dataset drifts at {dataset.share:.0%} or more)")
    if dataset.drifted:
        return f'<p class="verdict drift">Dataset drift detected: {counted}.</p>'
    return f'<p class="verdict stable">No dataset drift: {counted}.</p>'


def _summary(summary: Mapping[str, object], dataset: drift.DatasetDrift) -> str:
    rows: list[tuple[str, str]] = []
    for key, label in (("deployment", "Deployment"), ("environment", "Environment")):
        if summary.get(key) is not None:
            rows.append((label, _fmt(summary[key])))
    model, version = summary.get("model"), summary.get("version")
    if model is not None:
        rows.append(("Model", _fmt(model) + (f"@{_fmt(version)}" if version is not None else "")))
    start, end = summary.get("start"), summary.get("end")
    if start is not None or end is not None:
        rows.append(("Window", f"{_fmt(start)} to {_fmt(end)}"))
    if summary.get("rows") is not None:
        rows.append(("Rows", _fmt(summary["rows"])))
    share = f"{dataset.drifted_count} of {dataset.considered} ({dataset.drifted_share:.0%})"
    rows.append(("Drifted features", share))
    if dataset.no_data:
        rows.append(("Without data", ", ".join(dataset.no_data)))
    rows.append(("Dataset verdict", "drift" if dataset.drifted else
                 "no data" if dataset.considered == 0 else "no drift"))
    known = {"deployment", "environment", "model", "version", "start", "end", "rows", "problems",
             "dataset", "share"}
    rows.extend((key.replace("_", " ").capitalize(), _fmt(value))
                for key, value in summary.items() if key not in known)
    items = "".join(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in rows)
    return f'<h2>Summary</h2><dl class="summary">{items}</dl>'


def _problems(problems: object) -> str:
    if not problems or isinstance(problems, str) or not isinstance(problems, Sequence):
        return ""
    items = "".join(f"<li>{_e(_fmt(p))}</li>" for p in problems)
    return f"<h2>Problems reading the window</h2><ul>{items}</ul>"


def _table(features: Sequence[FeatureRow]) -> str:
    head = ("<tr><th scope=\"col\">Feature</th><th scope=\"col\">Kind</th>"
            "<th scope=\"col\">Method</th><th scope=\"col\">Statistic</th>"
            "<th scope=\"col\">Drifts when</th><th scope=\"col\">Drifted</th>"
            "<th scope=\"col\">Reference size</th><th scope=\"col\">Current size</th>"
            "<th scope=\"col\">Missing</th><th scope=\"col\">Detail</th></tr>")
    body = "".join(
        f'<tr><th scope="row"><a href="#feature-{i}">{_e(row.feature)}</a></th>'
        f"<td>{_e(row.kind)}</td><td>{_e(row.method)}</td>"
        f'<td class="n">{_e(_fmt(row.statistic))}</td><td>{_e(_rule(row))}</td>'
        f"<td>{_badge(row)}</td>"
        f'<td class="n">{_e(_fmt(row.reference_size))}</td>'
        f'<td class="n">{_e(_fmt(row.current_size))}</td>'
        f'<td class="n">{_e(_fmt(row.missing))}</td><td>{_e(row.detail or "")}</td></tr>'
        for i, row in enumerate(features))
    return (f"<h2>Drift by feature</h2><table><caption>{len(features)} features</caption>"
            f"<thead>{head}</thead><tbody>{body}</tbody></table>")


def _section(index: int, row: FeatureRow, histogram: Histogram | None) -> str:
    sentence = (f"{row.method} {_fmt(row.statistic)}; drifts when {_rule(row)}. "
                f"Reference {_fmt(row.reference_size)}, current {_fmt(row.current_size)}"
                f"{f', missing {_fmt(row.missing)}' if row.missing else ''}.")
    detail = f"<p>{_e(row.detail)}</p>" if row.detail else ""
    if histogram is None:
        drawn = "<p>No histogram for this feature.</p>"
    else:
        drawn = chart(histogram, index) + _values_table(histogram)
    return (f'<section class="feature" id="feature-{index}"><h3>{_e(row.feature)} '
            f"{_badge(row)}</h3><p>{_e(sentence)}</p>{detail}{drawn}</section>")


def _values_table(histogram: Histogram) -> str:
    rows = "".join(
        f'<tr><th scope="row">{_e(label)}</th><td class="n">{ref:.2%}</td>'
        f'<td class="n">{cur:.2%}</td></tr>'
        for label, ref, cur in zip(histogram.labels, histogram.reference, histogram.current,
                                   strict=True))
    return ("<details><summary>Bin values</summary><table><thead><tr>"
            '<th scope="col">Bin</th><th scope="col">Reference</th><th scope="col">Current</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></details>")


def _badge(row: FeatureRow) -> str:
    if row.statistic is None:
        return '<span class="badge nodata">no data</span>'
    if row.drifted:
        return '<span class="badge drift">drifted</span>'
    return '<span class="badge stable">stable</span>'


def _rule(row: FeatureRow) -> str:
    if row.threshold is None:
        return "—"
    if row.higher_is_drift:
        return f"above {_fmt(row.threshold)}"
    return f"p-value below {_fmt(row.threshold)}"


def _description(histogram: Histogram) -> str:
    bins = len(histogram.labels)
    kind = "categories" if histogram.kind == "categorical" else "bins"
    if not bins:
        return f"No values for {histogram.feature}."
    largest = max(range(bins), key=lambda i: abs(histogram.current[i] - histogram.reference[i]))
    return (f"{bins} {kind}; reference {histogram.reference_total:,} values, current "
            f"{histogram.current_total:,}. Largest difference at {histogram.labels[largest]}: "
            f"reference {histogram.reference[largest]:.1%}, current "
            f"{histogram.current[largest]:.1%}.")


def _scale(histogram: Histogram) -> tuple[float, int]:
    """The top of the y axis and its number of gridline steps, each a round share."""
    top = max([*histogram.reference, *histogram.current])
    for step in TICK_STEPS:
        steps = max(1, math.ceil(top / step - 1e-9))
        if steps <= 5:
            return step * steps, steps
    return 1.0, 4


def _axes(histogram: Histogram) -> str:
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    top, steps = _scale(histogram)
    parts = []
    for step in range(steps + 1):
        share = top * step / steps
        y = TOP + plot_h - plot_h * step / steps
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#d0d0d5" stroke-width="1"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    parts.append(f'<text transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)" '
                 'text-anchor="middle">share of values</text>')
    group = plot_w / len(histogram.labels)
    tilt = _tilted(histogram)
    axis = "category" if histogram.kind == "categorical" else "value (reference bins)"
    axis_y = HEIGHT - 6 if tilt else TOP + plot_h + 36
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{axis_y}" '
                 f'text-anchor="middle">{axis}</text>')
    for i, label in enumerate(histogram.labels):
        x = LEFT + group * (i + 0.5)
        y = TOP + plot_h + 14
        shown = label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"
        turn = f' transform="rotate(-35 {x:.1f} {y})"' if tilt else ""
        anchor = "end" if tilt else "middle"
        parts.append(f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}"{turn}>'
                     f"<title>{_e(label)}</title>{_e(shown)}</text>")
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#555"/>'
                 f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" '
                 f'y2="{TOP + plot_h}" stroke="#555"/>')
    return "".join(parts)


def _tilted(histogram: Histogram) -> bool:
    """Whether the bin labels are slanted, which many or long labels need to stay apart."""
    return len(histogram.labels) > 6 or any(len(label) > 10 for label in histogram.labels)


def _bars(histogram: Histogram) -> str:
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    top, _ = _scale(histogram)
    group = plot_w / len(histogram.labels)
    width = group * 0.38
    parts = []
    for i, label in enumerate(histogram.labels):
        for side, (share, colour, name) in enumerate((
                (histogram.reference[i], REFERENCE_COLOUR, "reference"),
                (histogram.current[i], CURRENT_COLOUR, "current"))):
            height = plot_h * min(share, top) / top
            x = LEFT + group * i + group * 0.1 + side * (width + group * 0.04)
            y = TOP + plot_h - height
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                         f'height="{height:.1f}" fill="{colour}"><title>{_e(label)}: {name} '
                         f"{share:.1%}</title></rect>")
    return "".join(parts)


def _legend(histogram: Histogram) -> str:
    parts = []
    for k, (colour, text) in enumerate((
            (REFERENCE_COLOUR, f"reference (n={histogram.reference_total:,})"),
            (CURRENT_COLOUR, f"current (n={histogram.current_total:,})"))):
        x = LEFT + k * 200
        parts.append(f'<rect x="{x}" y="10" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 18}" y="20">{_e(text)}</text>')
    return "".join(parts)


def _fmt(value: object) -> str:
    """A value as the report shows it: numbers to four significant digits, times in ISO 8601."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
