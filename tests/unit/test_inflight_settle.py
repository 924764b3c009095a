"""How InFlight settles a batch from aiokafka's answer (pure logic: no broker, aiokafka not started)."""

from __future__ import annotations

import asyncio

import pytest

from lab.clients import ACKED, UNKNOWN, KafkaProducer, KafkaSettings
from lab.clients.inflight import InFlight, _Group, _OpenBatch

pytestmark = pytest.mark.unit


class _Metadata:
    """What aiokafka's batch future gives on success: the batch's partition and base offset."""

    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset = partition, offset


def _settle(acks: object, answer: object) -> list:
    async def run() -> list:
        loop = asyncio.get_running_loop()
        producer = KafkaProducer(KafkaSettings("127.0.0.1:1", acks=acks))
        in_flight = InFlight(producer, loop, aiokafka_producer=None)
        group = _Group("t")
        results = [loop.create_future() for _ in range(2)]
        group.sends += [(i, producer.breaker.closed_generation(), f"m{i}", loop.time(), result)
                        for i, result in enumerate(results)]
        in_flight.fifo.append(group)
        answered = loop.create_future()
        answered.set_result(answer)
        in_flight._batch_answered(("t", 0), _OpenBatch(None, answered, group), group, answered)
        return [result.result() for result in results]

    return asyncio.run(run())


def test_an_acknowledged_batch_gives_each_send_its_offset():
    deliveries = _settle("all", _Metadata(partition=3, offset=40))
    assert [(d.status, d.partition, d.offset) for d in deliveries] == [(ACKED, 3, 40), (ACKED, 3, 41)]


def test_a_batch_answered_with_no_offset_is_not_acknowledged_when_acks_are_wanted():
    """aiokafka answers None for a batch it drained empty and never sent (MessageBatch.done_noack)."""
    deliveries = _settle("all", None)
    assert [d.status for d in deliveries] == [UNKNOWN, UNKNOWN]
    assert "no offset" in deliveries[0].error


def test_with_acks_0_a_batch_answered_with_no_offset_is_acknowledged():
    deliveries = _settle(0, None)
    assert [(d.status, d.partition, d.offset) for d in deliveries] == [(ACKED, None, None)] * 2
