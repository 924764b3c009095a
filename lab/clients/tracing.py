"""OpenTelemetry spans around the clients' pool acquires, queries, sends and consumes.

The SDK is optional (``pip install chaoslab[trace]``). A client resolves its
tracer ONCE, when it is made (``client_spans``): the tracer given to it, else the
global one if an OpenTelemetry TracerProvider has been installed, else none.
With none, the client's methods are the untraced ones, unchanged: no import, no
context lookup, and for queries, acquires and sends not even a test per call (the
consumer tests one attribute per record); bench/trace_bench.py measures what is
left. With one, the client routes the traced methods in for its own instance
(``route``), and each call gets its span:

    span                      kind      parent                         where
    pg pool acquire           INTERNAL  the current span (the query)   PostgresClient._acquire
    pg <method>               CLIENT    the caller's current span      execute / fetch / fetchrow / fetchval
    pg transaction            CLIENT    the caller's current span      transaction() / run_transaction (each attempt)
    send <topic>              PRODUCER  the caller's current span      KafkaProducer.enqueue (send, envelopes)
    process <topic>           CONSUMER  the producer's send span       KafkaConsumer.poll_envelopes, per record

The send span's context goes into the record's ``traceparent`` (and
``tracestate``) header, W3C Trace Context (trace_context.py), among the
envelope's headers; the consumer reads it back, so one trace shows a message
from the producer to the consumer. The send span ends when the send resolves
(acked, failed or unknown: its status and the delivery's partition and offset
are on the span). The envelope's correlation id is the span attribute
``messaging.message.conversation_id``. Structured logs (observability.py) carry
the current span's trace and span ids.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from .observability import log_event
from .trace_context import TraceContext, from_headers, with_context
from ..errors import TraceContextError

if TYPE_CHECKING:
    from .envelope import Envelope
    from .ledger import Delivery

log = logging.getLogger("lab.clients.tracing")


def installed_tracer(instrumentation: str) -> Any | None:
    """The global OpenTelemetry tracer, or None when the API is missing or no TracerProvider is installed
    (the API's default provider makes spans that record nothing: not worth their cost per call)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    from .. import __version__

    return provider.get_tracer(instrumentation, __version__)


def client_spans(tracer: Any | None, instrumentation: str) -> "ClientSpans | None":
    """What a client traces with: ``tracer`` if given, else the installed one; None means no tracing."""
    chosen = tracer if tracer is not None else installed_tracer(instrumentation)
    return ClientSpans(chosen) if chosen is not None else None


def handling_context(envelope: "Envelope") -> Any | None:
    """An OpenTelemetry context whose current span is the send span of ``envelope`` (from its ``traceparent``
    header): start the span that handles the event in it, and the trace goes on from the producer through
    the consumer to whatever the handling does and sends (``envelope.caused(...)``, sent in that span).

    None when the event carries no trace context or the OpenTelemetry API is not installed; a malformed
    header raises TraceContextError naming it."""
    carried = from_headers(envelope.headers)
    if carried is None:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return _remote_parent(trace, carried)


def _remote_parent(trace: Any, carried: TraceContext) -> Any:
    remote = trace.SpanContext(int(carried.trace_id, 16), int(carried.span_id, 16), is_remote=True,
                               trace_flags=trace.TraceFlags(carried.flags),
                               trace_state=trace.TraceState(list(carried.tracestate)))
    return trace.set_span_in_context(trace.NonRecordingSpan(remote))


def route(instance: object, name: str, replacement: Callable[..., Any]) -> None:
    """Make ``instance.name`` call ``replacement`` (an instance attribute shadows the class's method):
    how a traced client swaps in its traced methods once, so an untraced one pays nothing per call."""
    vars(instance)[name] = replacement


class ClientSpans:
    """The spans of one client, with what they need from OpenTelemetry looked up once."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.tracer = tracer
        self._trace = trace
        self._internal, self._client = SpanKind.INTERNAL, SpanKind.CLIENT
        self._producer, self._consumer = SpanKind.PRODUCER, SpanKind.CONSUMER
        self._status, self._error = Status, StatusCode.ERROR

    # -- Postgres ------------------------------------------------------------------------

    def query(self, method: str, query: str, pool: str) -> ContextManager[Any]:
        """The current span of one query, a child of the caller's span."""
        return self.tracer.start_as_current_span(  # type: ignore[no-any-return]
            f"pg {method}", kind=self._client,
            attributes={"db.system.name": "postgresql", "db.operation.name": method, "db.query.text": query,
                        "db.client.connection.pool.name": pool})

    def transaction(self, pool: str) -> ContextManager[Any]:
        """The current span of one transaction block (its acquire inside; the block's own commands, sent on
        the connection directly, have no spans of their own)."""
        return self.tracer.start_as_current_span(  # type: ignore[no-any-return]
            "pg transaction", kind=self._client,
            attributes={"db.system.name": "postgresql", "db.client.connection.pool.name": pool})

    def acquire(self, pool: str, size: int, idle: int) -> ContextManager[Any]:
        """The current span of one pool acquire (inside a query's span when a query acquires)."""
        return self.tracer.start_as_current_span(  # type: ignore[no-any-return]
            "pg pool acquire", kind=self._internal,
            attributes={"db.system.name": "postgresql", "db.client.connection.pool.name": pool,
                        "lab.pool.size": size, "lab.pool.idle": idle})

    # -- Kafka ---------------------------------------------------------------------------

    def start_send(self, topic: str, correlation_id: str | None) -> Any:
        """A send's span (a child of the caller's current span), started now, not made current: it ends
        when the send resolves (``end_send``), which may be after the caller has moved on."""
        attributes: dict[str, str] = {"messaging.system": "kafka", "messaging.destination.name": topic,
                                      "messaging.operation.type": "send"}
        if correlation_id is not None:
            attributes["messaging.message.conversation_id"] = correlation_id
        return self.tracer.start_span(f"send {topic}", kind=self._producer, attributes=attributes)

    def headers_for(self, span: Any, headers: list[tuple[str, bytes]] | None) -> list[tuple[str, bytes]]:
        """``headers`` carrying ``span``'s context as ``traceparent`` / ``tracestate``; unchanged when the span
        has no valid context (a no-op tracer's): W3C forbids propagating all-zero ids."""
        context = self.context_of(span)
        return with_context(headers or [], context) if context is not None else headers or []

    def end_send(self, span: Any, delivery: "Delivery", correlation_id: str | None = None) -> None:
        """End a send's span with what became of the send (logged, with the span's and the event's ids,
        if it was not acknowledged)."""
        span.set_attribute("messaging.message.id", delivery.message_id)
        span.set_attribute("lab.delivery.status", delivery.status)
        if delivery.partition is not None:
            span.set_attribute("messaging.destination.partition.id", str(delivery.partition))
        if delivery.offset is not None:
            span.set_attribute("messaging.kafka.offset", delivery.offset)
        if delivery.status != "acked":
            span.set_status(self._status(self._error, f"{delivery.status}: {delivery.error_class}"))
            context = self.context_of(span)
            log_event(log, logging.INFO, "traced send not acknowledged", message_id=delivery.message_id,
                      correlation_id=correlation_id, status=delivery.status, error_class=delivery.error_class,
                      trace_id=context.trace_id if context else None, span_id=context.span_id if context else None)
        span.end()

    def end_send_future(self, span: Any, correlation_id: str | None, future: "asyncio.Future[Delivery]") -> None:
        """``end_send`` as a done callback of the send's future (which the producer never cancels)."""
        if future.cancelled():
            self.end_refused(span, asyncio.CancelledError())
        else:
            self.end_send(span, future.result(), correlation_id)

    def end_refused(self, span: Any, error: BaseException) -> None:
        span.set_status(self._status(self._error, type(error).__name__))
        span.end()

    def consumed(self, record: Any, envelope: "Envelope | None", error: Exception | None,
                 duplicate: bool = False) -> None:
        """One span for one record handed over (or dropped as a duplicate, or malformed), a child of the
        producer's send span named by the record's ``traceparent``.

        A malformed trace context does not stop the consumer: the span starts a new trace and says why
        (``lab.trace_context_error``), and the error is logged with the record's place."""
        topic = getattr(record, "topic", "?")
        attributes: dict[str, Any] = {
            "messaging.system": "kafka", "messaging.destination.name": topic, "messaging.operation.type": "process",
            "messaging.destination.partition.id": str(getattr(record, "partition", "")),
            "messaging.kafka.offset": getattr(record, "offset", -1)}
        if envelope is not None:
            attributes["messaging.message.id"] = envelope.id
            if envelope.correlation_id is not None:
                attributes["messaging.message.conversation_id"] = envelope.correlation_id
        if duplicate:
            attributes["lab.duplicate"] = True
        parent = None
        headers = getattr(record, "headers", None)
        try:
            carried = from_headers(headers)
        except TraceContextError as err:
            attributes["lab.trace_context_error"] = str(err)
            log_event(log, logging.WARNING, "record with a malformed trace context", topic=topic,
                      partition=getattr(record, "partition", None), offset=getattr(record, "offset", None),
                      error=str(err))
            carried = None
            if err.header != "traceparent":
                try:
                    carried = from_headers(headers, keep_tracestate=False)
                except TraceContextError:
                    carried = None
        if carried is not None:
            parent = self.parent(carried)
        span = self.tracer.start_span(f"process {topic}", context=parent, kind=self._consumer, attributes=attributes)
        if error is not None:
            span.set_status(self._status(self._error, f"{type(error).__name__}: {error}"))
        span.end()

    # -- contexts ------------------------------------------------------------------------

    def context_of(self, span: Any) -> TraceContext | None:
        """The W3C context of an OpenTelemetry span; None for an invalid one (a no-op tracer's)."""
        context = span.get_span_context()
        if not context.is_valid:
            return None
        return TraceContext(format(context.trace_id, "032x"), format(context.span_id, "016x"),
                            int(context.trace_flags), tuple(context.trace_state.items()))

    def parent(self, carried: TraceContext) -> Any:
        """An OpenTelemetry context whose current span is the remote one ``carried`` names."""
        return _remote_parent(self._trace, carried)

__all__ = ["ClientSpans", "client_spans", "handling_context", "installed_tracer", "route"]
