"""Traces through the real stack: a message's send and consume spans in one trace, queries under their caller."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from lab.clients import ACKED, ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings, PostgresClient, \
    PostgresSettings
from lab.clients.dedup import SeenIds
from lab.clients.envelope import Envelope, encode
from lab.clients.tracing import handling_context

trace_sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the [trace] extra is not installed")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def spans():
    """A tracer of its own (not the global provider, which can be set once per process) and what it recorded."""
    exporter = InMemorySpanExporter()
    provider = trace_sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("tests"), exporter
    provider.shutdown()


def by_message(finished, kind):
    return {s.attributes["messaging.message.id"]: s for s in finished if s.kind == kind}


async def consume(stack, topic, tracer, count):
    seen, received = SeenIds(), []
    async with KafkaConsumer(ConsumerSettings(stack.kafka), tracer=tracer) as consumer:
        await consumer.assign(await consumer.partitions(topic), from_beginning=True)
        deadline = time.monotonic() + 15
        while len(received) < count:
            assert time.monotonic() < deadline, f"{len(received)} of {count} events read"
            batch, malformed = await consumer.poll_envelopes(seen, timeout_s=0.5)
            assert malformed == []
            received += batch
    return received


async def test_a_message_is_one_trace_from_producer_to_consumer(stack, spans):
    tracer, exporter = spans
    topic = f"traced-{uuid.uuid4().hex[:8]}"
    events = [Envelope("order.created", "shop", f"order {i}".encode(), correlation_id=f"conv-{i}") for i in range(3)]
    async with KafkaProducer(KafkaSettings(stack.kafka), tracer=tracer) as producer:
        with tracer.start_as_current_span("checkout") as checkout:
            deliveries = [await producer.send_envelope(topic, e) for e in events]
    assert [d.status for d in deliveries] == [ACKED] * 3
    received = await consume(stack, topic, tracer, len(events))

    finished = exporter.get_finished_spans()
    sends, processes = by_message(finished, SpanKind.PRODUCER), by_message(finished, SpanKind.CONSUMER)
    assert sorted(sends) == sorted(processes) == sorted(e.id for e in events)
    checkout_id = checkout.get_span_context().span_id
    for event, delivery in zip(events, deliveries):
        send, process = sends[event.id], processes[event.id]
        assert send.parent is not None and send.parent.span_id == checkout_id  # under the caller's span
        assert process.context.trace_id == send.context.trace_id  # one trace
        assert process.parent is not None and process.parent.span_id == send.context.span_id
        assert process.parent.is_remote
        assert send.attributes["messaging.message.conversation_id"] == event.correlation_id
        assert process.attributes["messaging.message.conversation_id"] == event.correlation_id
        assert send.attributes["messaging.kafka.offset"] == delivery.offset
        assert send.attributes["messaging.destination.partition.id"] == str(delivery.partition)
        assert send.status.status_code is StatusCode.UNSET
    for envelope in received:  # the context travels among the envelope's own headers
        send_context = sends[envelope.id].context
        flags = int(send_context.trace_flags)  # sampled, and (W3C level 2) a random trace id: 03
        expected = f"00-{send_context.trace_id:032x}-{send_context.span_id:016x}-{flags:02x}"
        assert envelope.headers["traceparent"] == expected


async def test_handling_an_event_and_sending_what_it_caused_continues_its_trace(stack, spans):
    tracer, exporter = spans
    topic = f"traced-chain-{uuid.uuid4().hex[:8]}"
    order = Envelope("order.created", "shop", b"{}", correlation_id="conv-9")
    async with KafkaProducer(KafkaSettings(stack.kafka), tracer=tracer) as producer:
        assert (await producer.send_envelope(topic, order)).status == ACKED
        [received] = await consume(stack, topic, tracer, 1)
        with tracer.start_as_current_span("handle order", context=handling_context(received)) as handling:
            payment = received.caused("payment.requested", "billing")
            assert (await producer.send_envelope(topic, payment)).status == ACKED
    sends = by_message(exporter.get_finished_spans(), SpanKind.PRODUCER)
    first, caused = sends[order.id].context, sends[payment.id]
    assert handling.get_span_context().trace_id == first.trace_id and handling.parent.span_id == first.span_id
    assert caused.context.trace_id == first.trace_id and caused.parent.span_id == handling.get_span_context().span_id
    assert caused.attributes["messaging.message.conversation_id"] == "conv-9"  # the correlation id, kept
    assert handling_context(Envelope("t", "s")) is None  # no trace context carried: a new trace


async def test_a_malformed_traceparent_starts_a_new_trace_and_the_event_still_arrives(stack, spans):
    tracer, exporter = spans
    topic = f"traced-bad-{uuid.uuid4().hex[:8]}"
    event = Envelope("order.created", "elsewhere", b"{}", headers={"traceparent": "00-not-a-trace-context"})
    async with KafkaProducer(KafkaSettings(stack.kafka)) as producer:  # untraced: the header goes out as it is
        raw = producer._producer
        assert raw is not None
        value, headers = encode(event)
        await raw.send_and_wait(topic, value, key=event.id.encode(), headers=headers)
    [received] = await consume(stack, topic, tracer, 1)
    assert received.id == event.id
    [process] = exporter.get_finished_spans()
    assert process.parent is None  # a root: no parent made up from a broken header
    assert "is 22 characters" in process.attributes["lab.trace_context_error"]


async def test_a_send_swallowed_by_a_blackhole_ends_its_span_as_unknown_when_it_resolves(stack, proxy, spans,
                                                                                         caplog):
    """The span of a send ends when the send resolves, whatever it resolves to: here unknown; the log line
    saying so carries the span's trace and span ids and the event's ids."""
    tracer, exporter = spans
    caplog.set_level(logging.INFO, logger="lab.clients.tracing")
    topic = f"traced-lost-{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(stack.kafka, send_deadline_s=2, request_timeout_s=1, stop_timeout_s=1)
    async with KafkaProducer(settings, tracer=tracer) as producer:
        assert (await producer.send_envelope(topic, Envelope("warm", "shop"))).status == ACKED
        await proxy.add_toxic("kafka", "timeout", attributes={"timeout": 0})  # every byte swallowed
        event = Envelope("order.created", "shop", b"{}", correlation_id="conv-lost")
        delivery = await producer.send_envelope(topic, event)
        assert delivery.status == "unknown"
        [span] = [s for s in exporter.get_finished_spans() if s.attributes.get("messaging.message.id") == event.id]
        assert span.status.status_code is StatusCode.ERROR and span.attributes["lab.delivery.status"] == "unknown"
        span_s = (span.end_time - span.start_time) / 1e9
        # it ended when the send resolved (aiokafka gave up on the batch at the 1 s request timeout), not when
        # the send was handed over; tolerance 0.1 s for the two clocks read a few calls apart
        assert delivery.latency_s > 0.5 and abs(span_s - delivery.latency_s) < 0.1, (span_s, delivery.latency_s)
        [logged] = [r.fields for r in caplog.records if r.getMessage() == "traced send not acknowledged"]
        assert (logged["trace_id"], logged["span_id"]) == (f"{span.context.trace_id:032x}",
                                                           f"{span.context.span_id:016x}")
        assert (logged["message_id"], logged["correlation_id"]) == (event.id, "conv-lost")
        await proxy.reset()


def pg_settings(stack) -> PostgresSettings:
    return PostgresSettings(dsn=stack.pg_dsn, application_name=f"traced-{uuid.uuid4().hex[:6]}", min_size=1,
                            max_size=2, command_timeout_s=3)


async def test_queries_and_their_pool_acquires_nest_under_the_callers_span(stack, spans):
    tracer, exporter = spans
    async with PostgresClient(pg_settings(stack), tracer=tracer) as client:
        with tracer.start_as_current_span("handler") as handler:
            assert await client.fetchval("SELECT $1::int + 1", 41) == 42
            with pytest.raises(Exception, match="syntax"):
                await client.execute("SELEC 1")
    finished = exporter.get_finished_spans()
    queries = [s for s in finished if s.name.startswith("pg ") and s.name != "pg pool acquire"]
    acquires = [s for s in finished if s.name == "pg pool acquire"]
    assert [q.name for q in queries] == ["pg fetchval", "pg execute"]
    assert len(acquires) == 2
    handler_context = handler.get_span_context()
    for query, acquire in zip(queries, acquires):
        assert query.kind is SpanKind.CLIENT
        assert query.context.trace_id == acquire.context.trace_id == handler_context.trace_id
        assert query.parent is not None and query.parent.span_id == handler_context.span_id
        assert acquire.parent is not None and acquire.parent.span_id == query.context.span_id
    assert queries[0].attributes["db.query.text"] == "SELECT $1::int + 1"
    assert queries[0].status.status_code is StatusCode.UNSET
    assert queries[1].status.status_code is StatusCode.ERROR  # the caller's own error, on its span


async def test_a_transaction_is_one_span_with_its_acquire_inside(stack, spans):
    tracer, exporter = spans
    async with PostgresClient(pg_settings(stack), tracer=tracer) as client:
        with tracer.start_as_current_span("handler") as handler:
            assert await client.run_transaction(lambda conn: conn.fetchval("SELECT 7")) == 7
    finished = exporter.get_finished_spans()
    [transaction] = [s for s in finished if s.name == "pg transaction"]
    [acquire] = [s for s in finished if s.name == "pg pool acquire"]
    assert transaction.parent is not None and transaction.parent.span_id == handler.get_span_context().span_id
    assert acquire.parent is not None and acquire.parent.span_id == transaction.context.span_id


async def test_an_untraced_client_makes_no_spans_and_routes_nothing(stack, spans):
    _tracer, exporter = spans
    async with PostgresClient(pg_settings(stack)) as client:  # no tracer given, no provider installed
        assert await client.fetchval("SELECT 1") == 1
        assert "_run" not in vars(client) and "_acquire" not in vars(client)
    async with KafkaProducer(KafkaSettings(stack.kafka)) as producer:
        assert "enqueue" not in vars(producer)
        delivery = await producer.send_envelope(f"untraced-{uuid.uuid4().hex[:8]}", Envelope("t", "s", b""))
        assert delivery.status == ACKED
    assert exporter.get_finished_spans() == ()
