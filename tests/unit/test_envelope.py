"""The event envelope's clear errors, big payloads and relations between events."""

from __future__ import annotations

import pytest

from lab.clients.envelope import PREFIX, Envelope, EnvelopeError, decode, encode, envelope_id
from lab.errors import LabError

pytestmark = pytest.mark.unit


def record(**overrides: bytes | None) -> list[tuple[str, bytes | None]]:
    headers = {PREFIX + "id": b"m1", PREFIX + "type": b"order.created", PREFIX + "source": b"shop",
               PREFIX + "time_ms": b"1700000000000", PREFIX + "schema_version": b"2"}
    headers.update({PREFIX + k: v for k, v in overrides.items()})
    return [(k, v) for k, v in headers.items() if v is not None]


def test_a_payload_over_one_megabyte_travels_as_the_value_itself() -> None:
    payload = bytes(range(256)) * (3 * 4096 + 1)  # 3 MB and a bit
    value, headers = encode(Envelope("blob.stored", "store", payload))
    assert value == payload and sum(len(v) for _, v in headers) < 200
    assert decode(value, headers).payload == payload


def test_any_unicode_round_trips() -> None:
    envelope = Envelope("注文.作成", "🛒-shop", "ü€𝄞".encode(), correlation_id="Ω\u0000x", headers={"ключ": "значение"})
    assert decode(*encode(envelope)) == envelope


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"id": None}, "id", "missing"),
    ({"type": b""}, "type", "empty"),
    ({"source": b"\xff\xfe"}, "source", "UTF-8"),
    ({"time_ms": b"yesterday"}, "time_ms", "integer"),
    ({"time_ms": b"-5"}, "time_ms", "integer"),
    ({"schema_version": b"0"}, "schema_version", "at least 1"),
    ({"schema_version": None}, "schema_version", "missing"),
    ({"correlation_id": b"\xc3"}, "correlation_id", "UTF-8"),
])
def test_a_malformed_record_names_its_field(overrides: dict, field: str, words: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode(b"{}", record(**overrides))
    assert caught.value.field == field and repr(field) in str(caught.value) and words in str(caught.value)
    assert isinstance(caught.value, LabError)


def test_a_repeated_header_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="more than once") as caught:
        decode(b"", record() + [(PREFIX + "id", b"m2")])
    assert caught.value.field == "id"


def test_a_tombstone_is_not_an_event() -> None:
    with pytest.raises(EnvelopeError, match="tombstone") as caught:
        decode(None, record())
    assert caught.value.field == "payload"


@pytest.mark.parametrize(("fields", "field"), [
    ({"payload": "text, not bytes"}, "payload"),
    ({"time_ms": 1.5}, "time_ms"),
    ({"time_ms": True}, "time_ms"),
    ({"id": ""}, "id"),
    ({"type": 3}, "type"),
    ({"headers": {PREFIX + "id": "x"}}, "headers"),
    ({"headers": {"k": b"bytes"}}, "headers['k']"),
    ({"extensions": {PREFIX + "type": b"x"}}, "extensions"),
])
def test_a_bad_envelope_is_refused_when_made(fields: dict, field: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        Envelope(**{"type": "t", "source": "s", **fields})
    assert caught.value.field == field


def test_an_event_caused_by_another_carries_its_correlation() -> None:
    first = Envelope("order.placed", "shop")
    second = first.caused("payment.requested", "billing")
    third = second.caused("payment.done", "bank")
    assert (second.correlation_id, second.causation_id) == (first.id, first.id)
    assert (third.correlation_id, third.causation_id) == (first.id, second.id)
    assert len({first.id, second.id, third.id}) == 3


def test_the_id_alone_is_read_without_decoding_the_rest() -> None:
    assert envelope_id(record()) == "m1"
    assert envelope_id(record(id=b"\xff")) is None and envelope_id(None) is None
