"""Envelopes through the real stack: the producer sends them, the consumer reads each event once."""

from __future__ import annotations

import time
import uuid

import pytest

from lab.clients import ACKED, FAILED, ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings
from lab.clients.dedup import SeenIds
from lab.clients.envelope import Envelope

pytestmark = pytest.mark.integration


async def test_envelopes_arrive_intact_and_each_event_is_handled_once(stack):
    topic = f"envelopes-{uuid.uuid4().hex[:8]}"
    events = [Envelope("order.created", "shop", f"order {i} €".encode(), correlation_id="conv-1",
                       headers={"tenant": "ü"}) for i in range(50)]
    events.append(events[0].caused("payment.requested", "billing", b"x" * 900_000))  # near the request limit
    async with KafkaProducer(KafkaSettings(stack.kafka)) as producer:
        deliveries = [await producer.send_envelope(topic, e) for e in events]
        again = await producer.send_envelope(topic, events[3])  # what a retry after a lost ack writes
        raw = producer._producer
        assert raw is not None
        await raw.send_and_wait(topic, b"not an event", key=b"junk")  # a record with no envelope
    assert [d.status for d in deliveries] + [again.status] == [ACKED] * 52
    assert [d.message_id for d in deliveries] == [e.id for e in events]  # the ledger is keyed by envelope id

    seen = SeenIds()
    received: list[Envelope] = []
    malformed = []
    async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
        await consumer.assign(await consumer.partitions(topic), from_beginning=True)
        deadline = time.monotonic() + 15
        while len(received) < len(events) or not malformed:
            assert time.monotonic() < deadline, f"{len(received)} of {len(events)} events read"
            batch, bad = await consumer.poll_envelopes(seen, timeout_s=0.5)
            received += batch
            malformed += bad
    assert sorted(e.id for e in received) == sorted(e.id for e in events)
    assert {e.id: e for e in received} == {e.id: e for e in events}  # every field, payload and header intact
    assert seen.duplicates == 1
    assert [err.field for err in malformed] == ["id"]


async def test_an_envelope_over_the_request_limit_fails_clearly(stack):
    """A payload over 1 MB encodes (tests/unit/test_envelope.py) but is larger than the producer's
    max request: the send fails at once, recorded as failed with the reason, and nothing is written."""
    topic = f"envelopes-big-{uuid.uuid4().hex[:8]}"
    async with KafkaProducer(KafkaSettings(stack.kafka)) as producer:
        delivery = await producer.send_envelope(topic, Envelope("blob", "store", b"\0" * 2_000_000))
    assert delivery.status == FAILED and "larger than" in (delivery.error or ""), delivery
