"""Properties of the event envelope codec: round trips, compatibility across schema versions, no crash on junk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.clients.envelope import PREFIX, SCHEMA_VERSION, Envelope, EnvelopeError, decode, encode

pytestmark = pytest.mark.property

# any Unicode a Kafka header can carry: everything but lone surrogates
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
user_header_names = unicode_text.filter(lambda name: not name.startswith(PREFIX))
extension_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).map(
    lambda tail: PREFIX + "x-" + tail)


@st.composite
def envelopes(draw: st.DrawFn, extensions: bool = False) -> Envelope:
    return Envelope(
        type=draw(unicode_text), source=draw(unicode_text), payload=draw(st.binary(max_size=2048)),
        id=draw(unicode_text), time_ms=draw(st.integers(0, 2**63)),
        correlation_id=draw(st.none() | unicode_text), causation_id=draw(st.none() | unicode_text),
        headers=draw(st.dictionaries(user_header_names, st.text(st.characters(blacklist_categories=("Cs",)),
                                                                max_size=30), max_size=4)),
        extensions=draw(st.dictionaries(extension_names, st.binary(max_size=30), max_size=3)) if extensions else {},
    )


@given(envelopes(extensions=True))
def test_decode_inverts_encode(envelope: Envelope) -> None:
    assert decode(*encode(envelope)) == envelope


@given(envelopes(), st.dictionaries(extension_names, st.binary(max_size=30), min_size=1, max_size=3))
def test_fields_of_a_newer_schema_survive_a_round_trip(envelope: Envelope, newer: dict[str, bytes]) -> None:
    """Forward: a version-3 producer's record, with headers this code does not know, is read and relayed intact."""
    value, headers = encode(envelope)
    headers = [(n, b"3" if n == PREFIX + "schema_version" else v) for n, v in headers] + list(newer.items())
    read = decode(value, headers)
    assert read.schema_version == 3 and dict(read.extensions) == newer
    relayed_value, relayed_headers = encode(read)
    assert relayed_value == value and sorted(relayed_headers) == sorted(headers)


@given(envelopes())
def test_a_version_1_record_decodes_with_no_causation_id(envelope: Envelope) -> None:
    """Backward: version 1 had no causation id; its records still decode, every other field intact."""
    value, headers = encode(envelope, version=1)
    assert not any(name == PREFIX + "causation_id" for name, _ in headers)
    read = decode(value, headers)
    assert read.causation_id is None and read.schema_version == 1
    assert (read.id, read.type, read.source, read.time_ms, read.correlation_id, read.payload, dict(read.headers)) == (
        envelope.id, envelope.type, envelope.source, envelope.time_ms, envelope.correlation_id, envelope.payload,
        dict(envelope.headers))


field_names = st.sampled_from(["id", "type", "source", "correlation_id", "causation_id"])


@given(field_names, st.text(max_size=5), st.characters(categories=("Cs",)))
def test_a_lone_surrogate_is_refused_naming_its_field(field: str, text: str, surrogate: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        Envelope(**{"type": "t", "source": "s", field: text + surrogate})  # type: ignore[arg-type]
    assert caught.value.field == field and repr(field) in str(caught.value)


header_items = st.tuples(
    st.one_of(st.sampled_from([PREFIX + n for n in ("id", "type", "source", "time_ms", "schema_version",
                                                    "correlation_id", "causation_id")]), st.text(max_size=12)),
    st.one_of(st.binary(max_size=12), st.just(b"12"), st.none()))


@settings(max_examples=500)
@given(st.one_of(st.none(), st.binary(max_size=64)), st.one_of(st.none(), st.lists(header_items, max_size=10)))
def test_any_record_decodes_or_names_what_is_wrong(value: bytes | None, headers: list | None) -> None:
    try:
        envelope = decode(value, headers)
    except EnvelopeError as err:
        assert err.field and repr(err.field) in str(err)
    else:
        assert decode(*encode(envelope)) == envelope
