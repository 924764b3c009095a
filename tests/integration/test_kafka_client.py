"""KafkaProducer / KafkaConsumer on the real stack, through the proxy, across an outage."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import weakref

import pytest

from lab.clients import (ACKED, ConsumerSettings, DeliveryLedger, KafkaConsumer, KafkaProducer, KafkaSettings,
                         check_delivery)
from lab.clients.inflight import partition_for

pytestmark = pytest.mark.integration

DEADLINE_S = 3.0


async def test_producer_through_a_ten_second_outage(stack, proxy):
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    producer = await KafkaProducer(KafkaSettings(stack.kafka, send_deadline_s=DEADLINE_S, request_timeout_s=1.5)).start()
    deliveries = []

    async def workload(stop_at: float):
        sequence = 0
        pending = set()
        while time.monotonic() < stop_at:
            sequence += 1
            task = asyncio.create_task(producer.send(topic, b"payload", message_id=f"m{sequence:06d}"))
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(0.02)
        deliveries.extend(await asyncio.gather(*pending))

    start = time.monotonic()
    work = asyncio.create_task(workload(start + 14))
    await asyncio.sleep(2)
    await proxy.disable("kafka")
    await asyncio.sleep(10)
    await proxy.enable("kafka")
    await work
    await producer.stop()

    ledger = producer.ledger.entries
    assert len(ledger) > 500
    slowest = max(d.latency_s for d in ledger)
    assert slowest <= DEADLINE_S + 0.5, f"a send took {slowest:.2f}s, beyond its {DEADLINE_S}s deadline"
    counts = producer.ledger.counts()
    assert counts["acked"] > 0 and counts["failed"] + counts["unknown"] > 0  # the outage was felt
    error_classes = {d.error_class for d in ledger if d.status != ACKED}
    assert error_classes <= {"KafkaUnavailable", "KafkaTimeout", "CallNotPermitted"}, error_classes  # LabErrors only
    async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
        records = await consumer.read_all(topic, timeout_s=15)
    report = check_delivery(ledger, [r.key.decode() for r in records])
    assert report.lost == () and report.failed_but_delivered == (), report.summary()
    print("outage:", counts, report.summary())


async def test_producer_stop_during_an_outage_is_bounded(stack, proxy):
    producer = await KafkaProducer(KafkaSettings(stack.kafka, send_deadline_s=5, stop_timeout_s=1)).start()
    await producer.send("stop-test", b"warm")
    await proxy.add_toxic("kafka", "timeout", attributes={"timeout": 0})
    pending = [asyncio.create_task(producer.send("stop-test", b"x")) for _ in range(20)]
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    await producer.stop()
    assert time.monotonic() - t0 < 2.0
    results = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert all(d.status != ACKED for d in results)
    assert {d.error_class for d in results} <= {"KafkaUnavailable", "KafkaTimeout"}, [d.error for d in results]


async def test_consumer_commits_and_measures_lag(stack):
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    async with KafkaProducer(KafkaSettings(stack.kafka)) as producer:
        for i in range(10):
            assert (await producer.send(topic, b"v", message_id=f"k{i}")).status == ACKED
    async with KafkaConsumer(ConsumerSettings(stack.kafka, group_id=f"g-{topic}")) as consumer:
        partitions = await consumer.partitions(topic)
        await consumer.assign(partitions, from_beginning=True)
        assert sum((await consumer.lag(partitions)).values()) == 10
        records = []
        while len(records) < 4:
            records += await consumer.poll(1.0, max_records=4 - len(records))
        await consumer.commit()
        assert sum((await consumer.lag(partitions)).values()) == 6  # Tansu auto-creates 4 partitions
        committed = [await consumer.raw.committed(tp) or 0 for tp in partitions]
        assert sum(committed) == 4


async def test_consumer_start_when_unreachable_fails_fast(stack, proxy):
    from lab.errors import KafkaUnavailable

    await proxy.disable("kafka")
    t0 = time.monotonic()
    with pytest.raises(KafkaUnavailable):
        await KafkaConsumer(ConsumerSettings(stack.kafka, start_timeout_s=1.5)).start()
    assert time.monotonic() - t0 < 3


async def test_pipelined_sends_are_accounted_as_the_broker_stored_them(stack):
    """The batched path: each Delivery names the partition and offset the read-back finds, the ledger keeps
    the newest max_entries of them and counts all, and the breaker and the histogram heard of every one."""
    topic = f"pipelined-{uuid.uuid4().hex[:8]}"
    producer = await KafkaProducer(KafkaSettings(stack.kafka, send_deadline_s=10),
                                   ledger=DeliveryLedger(max_entries=1000)).start()
    deliveries = []
    for base in range(0, 3000, 500):
        pending = [await producer.enqueue(topic, b"v" * 100, message_id=f"p{i:05d}") for i in range(base, base + 500)]
        deliveries += await asyncio.gather(*pending)
    await producer.stop()
    assert {d.status for d in deliveries} == {ACKED}
    async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
        records = await consumer.read_all(topic, timeout_s=15)
        partitions = sorted(tp.partition for tp in await consumer.partitions(topic))
    stored = {r.key.decode(): (r.partition, r.offset) for r in records}
    assert len(stored) == 3000
    # where raw aiokafka's default partitioner puts each key
    assert all(d.partition == partition_for(d.message_id.encode(), partitions) for d in deliveries)
    assert all(stored[d.message_id] == (d.partition, d.offset) for d in deliveries)
    ledger = producer.ledger
    assert ledger.counts()[ACKED] == 3000 and len(ledger) == 1000 and ledger.evicted == 2000
    assert {(d.message_id, d.partition, d.offset) for d in ledger.entries} <= {
        (d.message_id, d.partition, d.offset) for d in deliveries}
    report = check_delivery(ledger, list(stored), topic=topic)
    assert report.ok and report.acked == 1000 and report.unchecked == 2000 and not report.complete
    assert producer.breaker.metrics()["failed_calls"] == 0 and producer.breaker.metrics()["successful_calls"] > 0
    assert producer.send_latency.count == 3000


async def test_a_stopped_producer_is_not_kept_alive_by_its_sends(stack):
    """Nothing a producer sent outlives it: its deadline timer is gone once every send resolved
    (it used to hold every send for send_deadline_s, across producer instances: issue 16)."""
    producer = await KafkaProducer(KafkaSettings(stack.kafka, send_deadline_s=30)).start()
    pending = [await producer.enqueue("keepalive", b"x", message_id=str(i)) for i in range(2000)]
    assert {d.status for d in await asyncio.gather(*pending)} == {ACKED}
    await producer.stop()
    alive = weakref.ref(producer)
    del producer, pending
    gc.collect()
    assert alive() is None


async def test_a_new_batch_is_never_submitted_empty(stack):
    """Each send that starts a batch is in it before aiokafka can drain it.

    aiokafka drains an empty batch without a request and resolves its future
    with None (MessageBatch.done_noack); a message put into the builder after
    that is never sent, yet the batch's None answer settled it as acked, with no
    partition or offset (the blackhole scenario's lost acked message). With
    ``linger_ms=0`` the sender drains a batch at its next wake-up, before the
    task that submitted the batch runs again, so every sequential send here
    starts a batch in that window.
    """
    topic = f"first-{uuid.uuid4().hex[:8]}"
    async with KafkaProducer(KafkaSettings(stack.kafka, linger_ms=0)) as producer:
        deliveries = [await producer.send(topic, b"v", message_id=f"k{i:03d}") for i in range(30)]
    assert [d.status for d in deliveries] == [ACKED] * 30
    async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
        records = await consumer.read_all(topic, timeout_s=10)
    where = {r.key.decode(): (r.partition, r.offset) for r in records}
    wrong = [(d.message_id, d.partition, d.offset, where.get(d.message_id)) for d in deliveries
             if where.get(d.message_id) != (d.partition, d.offset)]
    assert wrong == [], f"acked but not read back where acknowledged (id, partition, offset, read back at): {wrong}"
