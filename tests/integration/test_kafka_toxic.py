"""The kafka toxic (issue 15), from real aiokafka through lab.proxy to the real broker (Tansu).

What the client sees is read from aiokafka itself: the error class its sender logs
for a produce response, what its consumer returns, the response objects its client
decodes. What the broker really stored is read back after the toxic is gone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

pytestmark = pytest.mark.integration

CALL_S = 5


def topic_name() -> str:
    return f"kt-{uuid.uuid4().hex[:8]}"


async def add(proxy, name: str, **attributes) -> None:
    await proxy.add_toxic("kafka", "kafka", name=name, attributes=attributes)


async def producer(stack, **overrides) -> AIOKafkaProducer:
    options = dict(bootstrap_servers=stack.kafka, acks=1, enable_idempotence=False, request_timeout_ms=2000,
                   retry_backoff_ms=50, linger_ms=0)
    options.update(overrides)
    p = AIOKafkaProducer(**options)
    await asyncio.wait_for(p.start(), CALL_S)
    return p


async def read_back(stack, topic: str, expect: int, within_s: float = 4.0) -> list[bytes]:
    """Every value in ``topic``, waiting until ``expect`` have come or ``within_s`` passed."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.kafka, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await asyncio.wait_for(consumer.start(), CALL_S)
    values: list[bytes] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while len(values) < expect and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            values += [m.value for msgs in batch.values() for m in msgs]
    finally:
        await asyncio.wait_for(consumer.stop(), CALL_S)
    return values


async def test_not_leader_not_forwarded_nothing_is_written(stack, proxy, caplog):
    topic = topic_name()
    p = await producer(stack)
    try:
        await p.send_and_wait(topic, b"before", partition=0)
        await add(proxy, "nl", api_keys="produce", error="NOT_LEADER_OR_FOLLOWER", forward=False)
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            with pytest.raises((asyncio.TimeoutError, KafkaError)):
                await asyncio.wait_for(p.send_and_wait(topic, b"refused", partition=0), 1.5)
        assert "NotLeaderForPartitionError" in caplog.text
        # While the toxic holds (it only touches Produce), the broker has only what came before.
        assert await read_back(stack, topic, expect=2, within_s=1.5) == [b"before"]
    finally:
        await proxy.reset()
        await asyncio.wait_for(p.stop(), CALL_S)


async def test_written_but_not_acknowledged(stack, proxy, caplog):
    topic = topic_name()
    p = await producer(stack)
    try:
        await p.partitions_for(topic)
        await add(proxy, "wna", api_keys="produce", error="REQUEST_TIMED_OUT", forward=True)
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            with pytest.raises((asyncio.TimeoutError, KafkaError)):
                await asyncio.wait_for(p.send_and_wait(topic, b"unacked", partition=0), 1.0)
        assert "RequestTimedOutError" in caplog.text
        values = await read_back(stack, topic, expect=1)
        assert values and set(values) == {b"unacked"}  # stored, maybe more than once (retries)
    finally:
        await proxy.reset()
        await asyncio.wait_for(p.stop(), CALL_S)


@pytest.mark.parametrize("error,logged", [
    ("NOT_ENOUGH_REPLICAS", "NotEnoughReplicasError"),
    ("LEADER_NOT_AVAILABLE", "LeaderNotAvailableError"),
])
async def test_produce_error_codes_reach_the_client_as_that_error(stack, proxy, caplog, error, logged):
    topic = topic_name()
    p = await producer(stack)
    try:
        await p.partitions_for(topic)
        await add(proxy, "err", api_keys="0", error=error)
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            with pytest.raises((asyncio.TimeoutError, KafkaError)):
                await asyncio.wait_for(p.send_and_wait(topic, b"x", partition=0), 1.0)
        assert logged in caplog.text
        await proxy.remove_toxic("kafka", "err")
        # The producer goes on: the same connection, the next send is acknowledged.
        await asyncio.wait_for(p.send_and_wait(topic, b"y", partition=0), CALL_S)
    finally:
        await proxy.reset()
        await asyncio.wait_for(p.stop(), CALL_S)


async def test_fetch_errors_hold_records_back_until_the_toxic_goes(stack, proxy):
    topic = topic_name()
    p = await producer(stack)
    await p.send_and_wait(topic, b"r1", partition=0)
    await p.stop()
    await add(proxy, "nf", api_keys="fetch", error="NOT_LEADER_OR_FOLLOWER")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.kafka, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await asyncio.wait_for(consumer.start(), CALL_S)
    try:
        got = []
        for _ in range(5):
            batch = await consumer.getmany(timeout_ms=200)
            got += [m.value for msgs in batch.values() for m in msgs]
        assert got == []
        await proxy.remove_toxic("kafka", "nf")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CALL_S
        while not got and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got += [m.value for msgs in batch.values() for m in msgs]
        assert got == [b"r1"]
    finally:
        await asyncio.wait_for(consumer.stop(), CALL_S)


async def test_metadata_error_and_throttle_as_aiokafka_decodes_them(stack, proxy):
    topic = topic_name()
    p = await producer(stack)
    await p.send_and_wait(topic, b"m", partition=0)  # the topic exists
    await p.stop()
    client = AIOKafkaClient(bootstrap_servers=stack.kafka)
    await asyncio.wait_for(client.bootstrap(), CALL_S)
    try:
        node = client.get_random_node()
        await add(proxy, "md", api_keys="metadata", error="UNKNOWN_TOPIC_OR_PARTITION", forward=True,
                  throttle_time_ms=1234)
        response = await asyncio.wait_for(client.send(node, MetadataRequest([topic])), CALL_S)
        assert response.API_VERSION >= 3  # a version with throttle_time_ms
        assert response.throttle_time_ms == 1234
        assert [(t[0], t[1]) for t in response.topics] == [(3, topic)]
        assert response.brokers  # forwarded: the broker's own list, untouched
        await proxy.update_toxic("kafka", "md", attributes={"forward": False, "error": "LEADER_NOT_AVAILABLE"})
        response = await asyncio.wait_for(client.send(node, MetadataRequest([topic])), CALL_S)
        assert [(t[0], t[1]) for t in response.topics] == [(5, topic)]
        assert response.brokers  # answered by the toxic, with the brokers it saw last
        await proxy.remove_toxic("kafka", "md")
        response = await asyncio.wait_for(client.send(node, MetadataRequest([topic])), CALL_S)
        assert [(t[0], t[1]) for t in response.topics] == [(0, topic)]
        assert response.throttle_time_ms == 0
    finally:
        await proxy.reset()
        await asyncio.wait_for(client.close(), CALL_S)


async def test_acks_zero_not_forwarded_is_lost_and_nothing_desyncs(stack, proxy):
    """A Produce with acks=0 owes no response: not forwarded, it is simply lost. (Tansu answers
    acks=0 Produce requests anyway, unlike Kafka, so aiokafka logs an unexpected frame on the
    acks=0 producer's connection once "kept" goes through; that is the broker, not the toxic.)"""
    topic = topic_name()
    p0 = await producer(stack, acks=0)
    p1 = await producer(stack)
    try:
        await p1.send_and_wait(topic, b"first", partition=0)
        await add(proxy, "drop", api_keys="produce", error="NOT_LEADER_OR_FOLLOWER", forward=False)
        await asyncio.wait_for(p0.send_and_wait(topic, b"lost", partition=0), CALL_S)  # acks=0: no answer owed
        await proxy.remove_toxic("kafka", "drop")
        await asyncio.wait_for(p0.send_and_wait(topic, b"kept", partition=0), CALL_S)
        await asyncio.wait_for(p1.send_and_wait(topic, b"last", partition=0), CALL_S)
        values = await read_back(stack, topic, expect=3)
        # Two producers, two connections: "kept" and "last" may land in either order.
        assert values[0] == b"first" and sorted(values[1:]) == [b"kept", b"last"]
    finally:
        await proxy.reset()
        await asyncio.wait_for(p0.stop(), CALL_S)
        await asyncio.wait_for(p1.stop(), CALL_S)


async def test_bad_attributes_are_a_400(stack, proxy):
    from lab.proxy.client import BadRequest

    with pytest.raises(BadRequest, match="api key"):
        await add(proxy, "bad", api_keys="produce,offsets")
    with pytest.raises(BadRequest, match="error"):
        await add(proxy, "bad", error="NOT_A_KAFKA_ERROR")
    assert await proxy.toxics("kafka") == []
