"""KafkaConsumer.read_all against Tansu's ListOffsets: every acked record below the high watermark is read.

Tansu (0.6, memory storage) answers ListOffsets EARLIEST with the offset of the batch object WRITTEN first, so
when producers' batches for one partition are stored out of offset order, seek_to_beginning starts past the
first batch (bench/repro_first_batch_race.py; the producer pool test's one CI loss). Out-of-order stores need
concurrent producers racing on the broker, so this test makes that race many times: 400 rounds (about a minute
on the shared 2-core machine) failed in 2 of 3 runs with seek_to_beginning, and read_all from offset 0 must not
fail at all. `make test` runs 100 rounds (it keeps to its 15-minute budget, and catches the old read-back about
one run in four); CI runs the 400 after it (`make test-long`, LAB_LONG_TESTS=1). Records acked at or past the
high watermark (Tansu's other fault, see the bench script) are counted and printed, not asserted on: no read-back
can return them."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from lab.clients import ConsumerSettings, KafkaConsumer
from lab.clients.kafka import _read_to_end

pytestmark = pytest.mark.integration

ROUNDS = 400 if os.environ.get("LAB_LONG_TESTS") == "1" else 100
PRODUCERS, MESSAGES = 3, 30


async def test_read_all_returns_every_acked_record_below_the_high_watermark_when_batches_land_out_of_order(stack):
    producers = [AIOKafkaProducer(bootstrap_servers=stack.kafka, acks="all", enable_idempotence=False, linger_ms=5,
                                  request_timeout_ms=5000) for _ in range(PRODUCERS)]
    for producer in producers:
        await producer.start()
    missed: list[str] = []
    beyond_end = 0  # acked at or past the partition's high watermark: Tansu's, reported, not ours to read
    try:
        for _ in range(ROUNDS):
            topic = f"readback-{uuid.uuid4().hex[:8]}"
            sent = await asyncio.gather(*(producers[n % PRODUCERS].send_and_wait(
                topic, b"x" * 100, key=f"{topic}-{n:04d}".encode()) for n in range(MESSAGES)))
            acked = {f"{topic}-{n:04d}": (m.partition, m.offset) for n, m in enumerate(sent)}
            async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
                read = {r.key.decode() for r in await consumer.read_all(topic, timeout_s=10)}
                ends = {tp.partition: consumer.raw.highwater(tp) for tp in consumer.raw.assignment()}
            for key, (partition, offset) in acked.items():
                if offset >= ends[partition]:
                    beyond_end += 1
                elif key not in read:
                    missed.append(f"{key} at {partition}:{offset} (high watermark {ends[partition]})")
    finally:
        for producer in producers:
            await producer.stop()
    assert not missed, missed
    print(f"{ROUNDS} rounds: {beyond_end} acked records at or past their partition's high watermark (Tansu)")


@pytest.mark.parametrize("position, listed_end, highwater, done", [
    (0, 0, None, False),  # no fetch has answered yet: the end is not known
    (3, 5, 5, False),
    (5, 5, 5, True),
    (5, 1, 7, False),  # the listed end is short (Tansu's LATEST): the high watermark rules
    (7, 1, 7, True),
    (4, 6, 4, False),  # the listed end is further: it rules
])
def test_a_partition_is_read_to_its_end_only_past_both_ends(position, listed_end, highwater, done):
    assert _read_to_end(position, listed_end, highwater) is done
