"""The clients' own OpenTelemetry spans during a run, kept for ``lab run --spans`` (OTLP/JSON).

Why: the history's spans (spans.py) show each scenario call as the runner saw it;
the clients under test trace themselves too (lab.clients.tracing: pool acquire,
query, send, consume, with the send's W3C trace context carried in the record's
headers so the consume span is a child of the send span, in the same trace).
``capture()`` makes those spans land in the same file: while it is open, every
span a client ends is kept, and ``otlp_spans`` turns them into OTLP/JSON spans.

How: clients resolve their tracer once, when they are made, from the global
TracerProvider (``installed_tracer``). ``capture()`` therefore makes sure an SDK
TracerProvider is the global one before the run's clients are made: it installs
one if none is (OpenTelemetry lets a process set it once), and otherwise adds its
processor to the SDK provider already installed (a second run in one process, or
the user's own). On exit the processor stops keeping spans; it cannot be removed
from the provider, so it stays, inert.

Guarantees: with the SDK missing ``capture()`` yields a capture that keeps nothing
(``available`` False) and costs nothing; at most ``max_spans`` spans are kept
(``dropped`` counts the rest), so a long run cannot grow without bound; a global
provider that is not the SDK's (a user's own implementation) is left alone and
nothing is kept.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

#: Spans kept per capture; beyond it, counted in ``dropped``. About 1 kB each in memory.
MAX_SPANS = 200_000

# Python's SpanKind numbers INTERNAL..CONSUMER from 0; OTLP's from 1 (0 is UNSPECIFIED).
_OTLP_KIND_OFFSET = 1


class ClientSpanCapture:
    """The spans clients ended while the capture was open (see the module docstring)."""

    def __init__(self, max_spans: int = MAX_SPANS) -> None:
        self.max_spans = max_spans
        self.available = False  # an SDK provider is the global one and our processor is on it
        self.kept: list[Any] = []  # opentelemetry.sdk.trace.ReadableSpan
        self.dropped = 0
        self._open = False
        self._lock = threading.Lock()  # the SDK may end spans on other threads

    def keep(self, span: Any) -> None:
        with self._lock:
            if not self._open:
                return
            if len(self.kept) >= self.max_spans:
                self.dropped += 1
                return
            self.kept.append(span)


def _processor(capture: ClientSpanCapture) -> Any:
    from opentelemetry.sdk.trace import SpanProcessor

    class _Keep(SpanProcessor):
        def on_end(self, span: Any) -> None:
            capture.keep(span)

    return _Keep()


def _sdk_provider() -> Any | None:
    """The global SDK TracerProvider, installing one if no provider is set; None if the SDK is missing or the
    global provider is someone else's implementation."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()  # set once per process: whoever won
    return provider if isinstance(provider, TracerProvider) else None


@contextlib.contextmanager
def capture(max_spans: int = MAX_SPANS) -> Iterator[ClientSpanCapture]:
    """Keep the spans clients end inside the block (clients made inside it trace; see the module docstring)."""
    kept = ClientSpanCapture(max_spans)
    provider = _sdk_provider()
    if provider is not None:
        provider.add_span_processor(_processor(kept))
        kept.available = True
        kept._open = True
    try:
        yield kept
    finally:
        with kept._lock:
            kept._open = False


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(values: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in (values or {}).items()]


def otlp_span(span: Any) -> dict[str, Any]:
    """One SDK ReadableSpan in OTLP/JSON (ids as hex, times as decimal strings of Unix nanoseconds)."""
    context = span.get_span_context()
    out: dict[str, Any] = {
        "traceId": format(context.trace_id, "032x"), "spanId": format(context.span_id, "016x"),
        "name": span.name, "kind": span.kind.value + _OTLP_KIND_OFFSET,
        "startTimeUnixNano": str(span.start_time or 0), "endTimeUnixNano": str(span.end_time or span.start_time or 0),
        "attributes": _attributes(span.attributes),
        "status": {"code": span.status.status_code.value},
    }
    if span.status.description:
        out["status"]["message"] = span.status.description
    if span.parent is not None:
        out["parentSpanId"] = format(span.parent.span_id, "016x")
    if span.events:
        out["events"] = [{"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": _attributes(e.attributes)}
                         for e in span.events]
    if span.links:
        out["links"] = [{"traceId": format(link.context.trace_id, "032x"),
                         "spanId": format(link.context.span_id, "016x"), "attributes": _attributes(link.attributes)}
                        for link in span.links]
    return out


def otlp_spans(kept: ClientSpanCapture | None) -> list[dict[str, Any]]:
    """The kept spans in OTLP/JSON, in the order they ended."""
    if kept is None:
        return []
    with kept._lock:
        spans = list(kept.kept)
    return [otlp_span(span) for span in spans]


__all__ = ["MAX_SPANS", "ClientSpanCapture", "capture", "otlp_span", "otlp_spans"]
