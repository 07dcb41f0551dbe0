"""W3C Trace Context for every prediction, exported as OpenTelemetry spans when asked.

A caller's ``traceparent`` is continued, otherwise a trace starts here; the trace id ties
the prediction's log record, its response header and its span together, so a reviewer can
follow one decision end to end. With an OTLP endpoint configured
(``OTEL_EXPORTER_OTLP_ENDPOINT``) each request also becomes a server span, exported in
batches off the request path by the OpenTelemetry SDK (``threadline[otel]``).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from threadline.domain import errors

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass
class Span:
    """One request's place in a trace; ``end`` closes it (and exports it, when exporting)."""

    trace_id: str
    span_id: str
    flags: str
    attributes: dict[str, Any] = field(default_factory=dict)
    _otel: Any = None

    @property
    def recording(self) -> bool:
        """Whether the span is exported, and so whether its attributes are worth setting."""
        return self._otel is not None

    @property
    def traceparent(self) -> str:
        """The header to send on: same trace, this server's span as the parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def end(self, error: str | None = None) -> None:
        if self._otel is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._otel.set_attributes(self.attributes)
        if error:
            self._otel.set_status(Status(StatusCode.ERROR, error))
        self._otel.end()


class Tracer(Protocol):
    def start(self, traceparent: str | None, name: str) -> Span: ...

    def shutdown(self) -> None: ...


def parse(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid ``traceparent``; None otherwise."""
    match = _TRACEPARENT.match(value.strip().lower()) if value else None
    if match and match.group(1) != _ZERO_TRACE and match.group(2) != _ZERO_SPAN:
        return match.group(1), match.group(2), match.group(3)
    return None


class W3CTracer:
    """Propagates trace context without exporting anything."""

    def start(self, traceparent: str | None, name: str) -> Span:
        parent = parse(traceparent)
        # Ids must be unique, not secret: the OpenTelemetry SDK draws them the same way, without
        # the system call per id of ``secrets`` (this runs on every request).
        ids = f"{random.getrandbits(192):048x}"
        if parent is None:
            return Span(ids[:32], ids[32:], "01")
        return Span(parent[0], ids[32:], parent[2])

    def shutdown(self) -> None:
        return None


class OtelTracer:
    """Spans through the OpenTelemetry SDK, exported over OTLP/HTTP by a batch processor."""

    def __init__(self, service_name: str) -> None:
        sdk_trace = errors.require_module("opentelemetry.sdk.trace", extra="otel", feature="OTLP trace export")
        export = errors.require_module("opentelemetry.sdk.trace.export", extra="otel", feature="OTLP trace export")
        otlp = errors.require_module("opentelemetry.exporter.otlp.proto.http.trace_exporter", extra="otel",
                                     feature="OTLP trace export")
        resources = errors.require_module("opentelemetry.sdk.resources", extra="otel", feature="OTLP trace export")
        resource = resources.Resource.create({"service.name": service_name})  # type: ignore[attr-defined]
        self._provider = sdk_trace.TracerProvider(resource=resource)  # type: ignore[attr-defined]
        self._provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter()))  # type: ignore[attr-defined]
        self._tracer = self._provider.get_tracer("threadline.serving")

    def start(self, traceparent: str | None, name: str) -> Span:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        parent = parse(traceparent)
        context = None
        if parent is not None:
            remote = SpanContext(int(parent[0], 16), int(parent[1], 16), is_remote=True,
                                 trace_flags=TraceFlags(int(parent[2], 16)))
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self._tracer.start_span(name, context=context, kind=SpanKind.SERVER, start_time=time.time_ns())
        ids = span.get_span_context()
        return Span(f"{ids.trace_id:032x}", f"{ids.span_id:016x}", f"{int(ids.trace_flags):02x}", _otel=span)

    def shutdown(self) -> None:
        self._provider.shutdown()  # flushes spans still queued


def tracer(otlp_endpoint: str | None, service_name: str) -> Tracer:
    return OtelTracer(service_name) if otlp_endpoint else W3CTracer()
