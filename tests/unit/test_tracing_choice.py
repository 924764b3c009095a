"""Tracing is chosen once per client, and logs carry the ids of the span they were written in."""

from __future__ import annotations

import json
import logging

import pytest

from lab.clients import ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings, PostgresClient, \
    PostgresSettings
from lab.clients.observability import JsonLinesFormatter
from lab.clients.tracing import client_spans, installed_tracer

trace_sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the [trace] extra is not installed")

pytestmark = pytest.mark.unit


def test_with_no_provider_installed_no_client_traces_or_routes_anything():
    assert installed_tracer("lab.tests") is None  # the API's default provider records nothing
    assert client_spans(None, "lab.tests") is None
    pg = PostgresClient(PostgresSettings(dsn="postgresql://u@127.0.0.1:1/db"))
    producer = KafkaProducer(KafkaSettings("127.0.0.1:1"))
    consumer = KafkaConsumer(ConsumerSettings("127.0.0.1:1"))
    assert {"_run", "_acquire"}.isdisjoint(vars(pg))
    assert {"enqueue", "enqueue_envelope"}.isdisjoint(vars(producer))
    assert consumer._spans is None


def test_a_given_tracer_routes_the_traced_methods_in_for_that_client_only():
    tracer = trace_sdk.TracerProvider().get_tracer("tests")
    traced = KafkaProducer(KafkaSettings("127.0.0.1:1"), tracer=tracer)
    plain = KafkaProducer(KafkaSettings("127.0.0.1:1"))
    assert traced.enqueue == traced._traced_enqueue and traced.enqueue_envelope == traced._traced_enqueue_envelope
    assert plain.enqueue.__func__ is KafkaProducer.enqueue
    pg = PostgresClient(PostgresSettings(dsn="postgresql://u@127.0.0.1:1/db"), tracer=tracer)
    assert pg._run == pg._traced_run and pg._acquire == pg._traced_acquire


def test_a_no_op_tracers_span_puts_no_context_in_the_headers():
    """W3C: an all-zero trace id is never propagated (a no-op tracer's spans have one)."""
    from opentelemetry.trace import NoOpTracer

    spans = client_spans(NoOpTracer(), "lab.tests")
    assert spans is not None
    span = spans.start_send("topic", "conv-1")
    assert spans.headers_for(span, [("env.id", b"1")]) == [("env.id", b"1")]
    recording = client_spans(trace_sdk.TracerProvider().get_tracer("tests"), "lab.tests")
    assert recording is not None
    sent = recording.headers_for(recording.start_send("topic", None), [("env.id", b"1")])
    assert [name for name, _ in sent] == ["env.id", "traceparent"]


def _line(logger_name: str, message: str) -> dict:
    record = logging.LogRecord(logger_name, logging.INFO, __file__, 1, message, None, None)
    record.fields = {"message_id": "m-1"}
    return json.loads(JsonLinesFormatter().format(record))


def test_a_log_line_written_inside_a_span_carries_its_trace_and_span_ids():
    tracer = trace_sdk.TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("handler") as span:
        inside = _line("lab.clients.kafka", "inside")
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}" and inside["span_id"] == f"{context.span_id:016x}"
    assert inside["message_id"] == "m-1"
    outside = _line("lab.clients.kafka", "outside")
    assert "trace_id" not in outside and "span_id" not in outside
