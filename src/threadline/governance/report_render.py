"""Markdown, HTML and JSON forms of the compliance report and the readiness checklist.

Reports travel: pasted into tickets, attached to audits, opened in a browser. So every form
says each status as a word (colour is a hint, never the message), every string that came from a
user (names, comments, gate reasons, card-derived details) is escaped for its target, and the
HTML is one self-contained file with inline CSS and no scripts. JSON forms are plain dicts of
JSON types, for ``orjson.dumps`` and the API alike.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from threadline.governance import compliance, readiness

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f23;max-width:72rem}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}
th,td{border:1px solid #d0d7de;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.status{font-weight:bold;white-space:nowrap}
.satisfied,.pass,.attested{color:#1a7f37}
.missing,.fail{color:#cf222e}
.needs-attestation{color:#9a6700}
code{font-size:.9em}
"""


# --- compliance


def compliance_json(report: compliance.ComplianceReport) -> dict[str, Any]:
    return {
        "model": report.model,
        "version": report.version,
        "risk_tier": report.risk_tier,
        "generated_from": dict(report.generated_from),
        "counts": dict(report.counts),
        "controls": [{"framework": c.framework, "control_id": c.control_id, "title": c.title,
                      "status": c.status, "detail": c.detail, "evidence": list(c.evidence)}
                     for c in report.controls],
    }


def compliance_markdown(report: compliance.ComplianceReport) -> str:
    lines = [f"# Compliance report: {_md(report.model)} version {report.version}", "",
             f"Risk tier: **{_md(report.risk_tier)}**. {_counts(report.counts)}.", ""]
    for framework, controls in _frameworks(report):
        lines += [f"## {_md(framework)}", "", "| Control | Title | Status | Detail | Evidence |",
                  "|---|---|---|---|---|"]
        lines += [f"| {_md(c.control_id)} | {_md(c.title)} | **{c.status.upper()}** | {_md(c.detail)} | "
                  f"{'<br>'.join(_md(link) for link in c.evidence)} |" for c in controls]
        lines.append("")
    return "\n".join(lines)


def compliance_html(report: compliance.ComplianceReport) -> str:
    title = f"Compliance report: {report.model} version {report.version}"
    body = [f"<p>Risk tier: <strong>{_h(report.risk_tier)}</strong>. {_h(_counts(report.counts))}.</p>"]
    for framework, controls in _frameworks(report):
        rows = [f"<tr><td>{_h(c.control_id)}</td><td>{_h(c.title)}</td>{_status_cell(c.status)}"
                f"<td>{_h(c.detail)}</td><td>{'<br>'.join(_anchor(link) for link in c.evidence)}</td></tr>"
                for c in controls]
        body.append(f"<h2>{_h(framework)}</h2>" + _table(("Control", "Title", "Status", "Detail", "Evidence"),
                                                         rows))
    return _page(title, body)


def _frameworks(report: compliance.ComplianceReport,
                ) -> Iterable[tuple[str, tuple[compliance.Control, ...]]]:
    for framework in dict.fromkeys(c.framework for c in report.controls):
        yield framework, tuple(c for c in report.controls if c.framework == framework)


# --- readiness


def readiness_json(checklist: readiness.Checklist) -> dict[str, Any]:
    name, environment = checklist.deployment
    return {
        "deployment": {"name": name, "environment": environment},
        "model": checklist.model,
        "version": checklist.version,
        "ready": checklist.ready,
        "counts": dict(checklist.counts),
        "items": [{"id": i.id, "category": i.category, "title": i.title, "status": i.status,
                   "detail": i.detail, "attestation": _attestation_json(i.attestation)}
                  for i in checklist.items],
    }


def _attestation_json(attestation: readiness.Attestation | None) -> dict[str, Any] | None:
    if attestation is None:
        return None
    return {"actor": attestation.actor, "time": attestation.time.isoformat(),
            "comment": attestation.comment, "signature": attestation.signature}


def readiness_markdown(checklist: readiness.Checklist) -> str:
    name, environment = checklist.deployment
    lines = [f"# Production readiness: {_md(name)} ({_md(environment)})", "",
             f"Model {_md(checklist.model)} version {_md(str(checklist.version or 'unresolved'))}. "
             f"Ready: **{'YES' if checklist.ready else 'NO'}**. {_counts(checklist.counts)}.", ""]
    for category, items in checklist.by_category():
        lines += [f"## {category.capitalize()}", "", "| Item | Status | Detail |", "|---|---|---|"]
        lines += [f"| {_md(i.title)} (`{i.id}`) | **{i.status.upper()}** | {_md(i.detail)} |" for i in items]
        lines.append("")
    return "\n".join(lines)


def readiness_html(checklist: readiness.Checklist) -> str:
    name, environment = checklist.deployment
    title = f"Production readiness: {name} ({environment})"
    verdict = "ready" if checklist.ready else "not ready"
    body = [f"<p>Model {_h(checklist.model)} version {_h(str(checklist.version or 'unresolved'))}. "
            f"Verdict: <strong class=\"{'pass' if checklist.ready else 'fail'}\">{verdict.upper()}</strong>. "
            f"{_h(_counts(checklist.counts))}.</p>"]
    for category, items in checklist.by_category():
        rows = [f"<tr><td>{_h(i.title)}<br><code>{_h(i.id)}</code></td>{_status_cell(i.status)}"
                f"<td>{_h(i.detail)}</td></tr>" for i in items]
        body.append(f"<h2>{_h(category.capitalize())}</h2>" + _table(("Item", "Status", "Detail"), rows))
    return _page(title, body)


# --- shared


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{number} {status}" for status, number in counts.items())


def _md(text: str) -> str:
    """One table cell or heading: no raw HTML, and no ``|`` or newline that would break the row."""
    escaped = html.escape(text.replace("\\", "\\\\"), quote=False).replace("|", "\\|")
    return "<br>".join(escaped.splitlines())


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _anchor(link: str) -> str:
    # Only relative and http(s) links are clickable: a base URL is configuration, not trusted markup.
    if link.startswith(("/", "https://", "http://")) and not link.startswith("//"):
        return f'<a href="{_h(link)}">{_h(link)}</a>'
    return _h(link)


def _status_cell(status: str) -> str:
    return f'<td class="status {status.replace(" ", "-")}">{_h(status.upper())}</td>'


def _table(headers: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{_h(header)}</th>" for header in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _page(title: str, body: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_h(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{_h(title)}</h1>{''.join(body)}</body></html>\n")
