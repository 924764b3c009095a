"""capture() keeps the spans clients end while it is open, up to its bound, and otlp_span writes them as OTLP/JSON.

Each case runs in a child process: capture() installs the process's global TracerProvider (once per process, by
OpenTelemetry's rule), which would make every client made later in this test process trace."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit
pytest.importorskip("opentelemetry.sdk.trace")


def in_child(body: str) -> object:
    script = textwrap.dedent('''
        import json
        from opentelemetry import trace
        from lab.scenario.report.client_spans import capture, otlp_span, otlp_spans
    ''') + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_spans_ended_inside_are_kept_in_order_and_those_after_are_not():
    kept, available = in_child('''
        with capture() as kept:
            tracer = trace.get_tracer("test")  # as a client made inside the capture resolves it
            with tracer.start_as_current_span("outer"):
                with tracer.start_as_current_span("inner", kind=trace.SpanKind.PRODUCER, attributes={"n": 3}):
                    pass
        tracer.start_span("after").end()
        print(json.dumps([otlp_spans(kept), kept.available]))
    ''')
    assert available
    assert [s["name"] for s in kept] == ["inner", "outer"]  # in the order they ended; "after" not kept
    inner, outer = kept
    assert inner["traceId"] == outer["traceId"] and inner["parentSpanId"] == outer["spanId"]
    assert "parentSpanId" not in outer
    assert inner["kind"] == 4 and outer["kind"] == 1  # OTLP numbers: PRODUCER, INTERNAL
    assert inner["attributes"] == [{"key": "n", "value": {"intValue": "3"}}]
    assert int(inner["endTimeUnixNano"]) >= int(inner["startTimeUnixNano"]) > 0


def test_a_capture_keeps_at_most_its_bound_and_counts_the_rest_and_a_second_one_works_too():
    first, dropped, second = in_child('''
        with capture(max_spans=2) as kept:
            tracer = trace.get_tracer("test")
            for n in range(5):
                tracer.start_span(f"s{n}").end()
        with capture() as again:  # the provider is already set: the capture joins it
            trace.get_tracer("test").start_span("again").end()
        print(json.dumps([[s["name"] for s in otlp_spans(kept)], kept.dropped, [s["name"] for s in otlp_spans(again)]]))
    ''')
    assert (first, dropped, second) == (["s0", "s1"], 3, ["again"])


def test_an_error_status_and_its_message_are_written():
    written = in_child('''
        with capture() as kept:
            span = trace.get_tracer("test").start_span("failing")
            span.set_status(trace.Status(trace.StatusCode.ERROR, "unknown: KafkaTimeout"))
            span.end()
        print(json.dumps(otlp_span(kept.kept[0])))
    ''')
    assert written["status"] == {"code": 2, "message": "unknown: KafkaTimeout"}
