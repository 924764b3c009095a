"""The W3C trace context codec: what it accepts, what it refuses (clearly), and that it never crashes."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from lab.clients.trace_context import (TraceContext, format_tracestate, from_headers, parse_traceparent,
                                       parse_tracestate, with_context)
from lab.errors import LabError, TraceContextError

pytestmark = pytest.mark.unit

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
HEADER = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_the_specs_example_parses_and_formats_back():
    context = parse_traceparent(HEADER)
    assert (context.trace_id, context.span_id, context.flags, context.sampled) == (TRACE_ID, SPAN_ID, 1, True)
    assert context.traceparent() == HEADER
    assert parse_traceparent(HEADER.encode()) == context  # Kafka header values are bytes
    assert not parse_traceparent(HEADER[:-2] + "00").sampled


def test_a_later_version_keeps_the_four_fields_and_ignores_what_it_adds():
    context = parse_traceparent(f"cc-{TRACE_ID}-{SPAN_ID}-09-what-the-future-adds")
    assert (context.trace_id, context.span_id, context.flags) == (TRACE_ID, SPAN_ID, 9)
    assert context.traceparent() == f"00-{TRACE_ID}-{SPAN_ID}-09"  # we write the version we know


@pytest.mark.parametrize(("value", "says"), [
    ("", "is 0 characters"),
    (HEADER[:-1], "is 54 characters"),
    (HEADER + "-x", "version-00 header is 55"),
    ("ff" + HEADER[2:], "version ff is invalid"),
    ("0g" + HEADER[2:], "2-digit lowercase hex version"),
    (HEADER.upper(), "lowercase hex"),
    (f"00-{'0' * 32}-{SPAN_ID}-01", "trace id must not be all zeros"),
    (f"00-{TRACE_ID}-{'0' * 16}-01", "span id must not be all zeros"),
    (f"00-{TRACE_ID[:-1]}z-{SPAN_ID}-01", "trace id must be 32 lowercase hex"),
    (f"00-{TRACE_ID}-{SPAN_ID}-0x", "flags must be 2 lowercase hex"),
    (f"00_{TRACE_ID}_{SPAN_ID}_01", "lowercase hex version and '-'"),
    (f"00-{TRACE_ID}+{SPAN_ID}-01", "separated by '-'"),
    (f"01-{TRACE_ID}-{SPAN_ID}-01x", "must follow a '-'"),
    ("00-" + "é" * 52, "separated by '-'"),
    (f"00-{TRACE_ID[:-1]}é-{SPAN_ID}-01", "trace id must be 32 lowercase hex"),
    (b"00-\xff" + HEADER[4:].encode(), "is not ASCII"),
    (55, "must be a string or bytes, not int"),
    (None, "must be a string or bytes, not NoneType"),
])
def test_a_malformed_traceparent_is_a_clear_error(value, says):
    with pytest.raises(TraceContextError) as caught:
        parse_traceparent(value)
    assert caught.value.header == "traceparent"
    assert says in str(caught.value) and "'traceparent'" in str(caught.value)
    assert isinstance(caught.value, LabError)


def test_tracestate_members_parse_in_order_and_format_back():
    members = parse_tracestate("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7,, tenant1@vendor=x y")
    assert members == (("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7"), ("tenant1@vendor", "x y"))
    assert parse_tracestate(format_tracestate(members)) == members
    assert parse_tracestate("") == ()


@pytest.mark.parametrize(("value", "says"), [
    ("novalue", "is not key=value"),
    ("Upper=1", "not a valid tracestate key"),
    ("k=a,b=", "not a valid tracestate value"),
    ("k=a\x01b", "not a valid tracestate value"),
    ("k=1,k=2", "appears more than once"),
    (",".join(f"k{i}=v" for i in range(33)), "more than 32 members"),
])
def test_a_malformed_tracestate_is_a_clear_error(value, says):
    with pytest.raises(TraceContextError) as caught:
        parse_tracestate(value)
    assert caught.value.header == "tracestate" and says in str(caught.value)


def test_the_context_travels_in_kafka_headers_and_replaces_an_earlier_one():
    first = TraceContext(TRACE_ID, SPAN_ID, 1, (("vendor", "a"),))
    second = TraceContext(TRACE_ID, "b7ad6b7169203331", 0)
    headers = with_context([("env.id", b"1"), ("tenant", b"t")], first)
    assert from_headers(headers) == first
    relayed = with_context(headers, second)
    assert from_headers(relayed) == second
    assert [name for name, _ in relayed] == ["env.id", "tenant", "traceparent"]
    assert from_headers({"traceparent": first.traceparent()}) == TraceContext(TRACE_ID, SPAN_ID, 1)  # envelope
    assert from_headers([("env.id", b"1")]) is None and from_headers(None) is None


def test_a_repeated_or_broken_header_in_a_record_is_named():
    with pytest.raises(TraceContextError, match="appears more than once"):
        from_headers([("traceparent", HEADER.encode()), ("traceparent", HEADER.encode())])
    broken_state = [("traceparent", HEADER.encode()), ("tracestate", b"=bad")]
    with pytest.raises(TraceContextError) as caught:
        from_headers(broken_state)
    assert caught.value.header == "tracestate"
    assert from_headers(broken_state, keep_tracestate=False) == parse_traceparent(HEADER)
    with pytest.raises(TraceContextError, match="is 0 characters"):
        from_headers([("traceparent", None)])


def test_a_context_refuses_ids_it_could_not_write():
    with pytest.raises(TraceContextError, match="span id"):
        TraceContext(TRACE_ID, "short")
    with pytest.raises(TraceContextError, match="flags"):
        TraceContext(TRACE_ID, SPAN_ID, 256)


_hex = st.text("0123456789abcdef", min_size=1, max_size=1)


@given(st.text(_hex, min_size=32, max_size=32), st.text(_hex, min_size=16, max_size=16),
       st.integers(0, 255))
def test_any_valid_context_round_trips(trace_id, span_id, flags):
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return
    context = TraceContext(trace_id, span_id, flags)
    assert parse_traceparent(context.traceparent()) == context


_near_valid = st.builds(lambda cut, tail: HEADER[:cut] + tail, st.integers(0, 55), st.text(max_size=8))


@given(st.one_of(st.text(max_size=80), st.binary(max_size=80), _near_valid))
def test_any_input_parses_or_is_a_trace_context_error(value):
    for parse in (parse_traceparent, parse_tracestate):
        try:
            parse(value)
        except TraceContextError:
            pass
