"""W3C Trace Context: accept a caller's ``traceparent`` or start a trace, and pass it on.

The trace id ties a prediction's log record, its response header and (when an OTLP endpoint
is configured) its span together, so a reviewer can follow one decision end to end.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    parent_span_id: str | None
    span_id: str
    flags: str

    @property
    def traceparent(self) -> str:
        """The header to send on: same trace, this server's span as the parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def from_header(value: str | None) -> TraceContext:
    """Continue the caller's trace when the header is valid; otherwise start a new one."""
    match = _TRACEPARENT.match(value.strip().lower()) if value else None
    if match and match.group(1) != _ZERO_TRACE and match.group(2) != _ZERO_SPAN:
        return TraceContext(match.group(1), match.group(2), secrets.token_hex(8), match.group(3))
    return TraceContext(secrets.token_hex(16), None, secrets.token_hex(8), "01")
