"""Reproduce the blackhole scenario's producer side in a loop; on an acked loss, dump the evidence.

Runs the resilient KafkaProducer against the running local stack through the
kafka proxy with the scenario's timing (ClientProfile defaults: send deadline
2 s, request timeout 1 s, 8 calls in flight, one every 25 ms; 1 s baseline,
timeout-0 toxics on both directions of the kafka proxy for 3 s, then recovery),
reads the topic back and compares it with the ledger. On a lost acked id it
prints the lost Delivery (partition, offset), the record read back at that
partition/offset, every unknown-but-delivered send, and aiokafka's debug log
within a second of the lost send.

Usage (stack up, LAB_* env as for ``python -m lab``):
    python bench/repro_blackhole_loss.py --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import sys
import time
import uuid

from lab.clients import (ACKED, UNKNOWN, ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings,
                         check_delivery)
from lab.clients import kafka as kafka_clients
from lab.config import Settings
from lab.proxy.client import NotFound, ToxiproxyClient
from lab.resilience import CircuitBreaker
from lab.scenario.targets import ClientProfile


class Ring(logging.Handler):
    """The last ``capacity`` log records, with monotonic stamps, for dumping around a loss."""

    def __init__(self, capacity: int = 200_000) -> None:
        super().__init__(logging.DEBUG)
        self.records: collections.deque[tuple[float, str]] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic(), f"{record.name} {record.levelname} {record.getMessage()}"))


async def toxics(api: str, on: bool) -> None:
    client = ToxiproxyClient(api)
    for direction in ("upstream", "downstream"):
        name = f"repro-timeout-{direction}"
        if on:
            await client.add_toxic("kafka", "timeout", name=name, stream=direction, attributes={"timeout": 0})
        else:
            try:
                await client.remove_toxic("kafka", name)
            except NotFound:
                pass


async def one_round(settings: Settings, profile: ClientProfile, ring: Ring, fault_s: float) -> bool:
    topic = f"repro-{uuid.uuid4().hex[:8]}"
    breaker = CircuitBreaker(f"kafka:{topic}", profile.breaker(kafka_clients.RECORDED))
    producer = await KafkaProducer(KafkaSettings(
        settings.kafka_bootstrap, send_deadline_s=profile.send_deadline_s,
        request_timeout_s=profile.request_timeout_s, stop_timeout_s=2.0), breaker=breaker).start()
    stop = asyncio.Event()
    active: set[asyncio.Task[object]] = set()
    sequence = 0
    marks: dict[str, float] = {}

    async def drive() -> None:
        nonlocal sequence
        while not stop.is_set():
            if len(active) < profile.in_flight:
                sequence += 1
                task = asyncio.ensure_future(producer.send(topic, b"chaos", message_id=f"{topic}-{sequence:07d}"))
                active.add(task)
                task.add_done_callback(active.discard)
            await asyncio.sleep(0.025)

    driver = asyncio.ensure_future(drive())
    await asyncio.sleep(1.0)
    marks["fault"] = time.monotonic()
    await toxics(settings.proxy_url, True)
    try:
        await asyncio.sleep(fault_s)
    finally:
        await toxics(settings.proxy_url, False)
    marks["heal"] = time.monotonic()
    await asyncio.sleep(3.0)
    stop.set()
    await driver
    if active:
        await asyncio.wait(active, timeout=5)
    await producer.stop()
    async with KafkaConsumer(ConsumerSettings(settings.kafka_bootstrap)) as consumer:
        records = await consumer.read_all(topic, timeout_s=10)
    report = check_delivery(producer.ledger, [r.key.decode() for r in records], topic=topic)
    print(f"{topic}: {report.summary()}", flush=True)
    if report.ok:
        return True
    at = {(r.partition, r.offset): r.key.decode() for r in records}
    where = {r.key.decode(): (r.partition, r.offset) for r in records}
    entries = {d.message_id: d for d in producer.ledger.entries}
    t0 = marks["fault"]
    print(f"  fault at +0.000, heal at +{marks['heal'] - t0:.3f} (times below relative to the fault)")
    for message_id in report.lost:
        d = entries[message_id]
        print(f"  LOST {d}\n    sent +{d.sent_at - t0:.3f} resolved +{d.resolved_at - t0:.3f}; "
              f"read back at ({d.partition}, {d.offset}): {at.get((d.partition, d.offset))!r}")
    for d in entries.values():
        if d.status == UNKNOWN and d.message_id in where:
            print(f"  UNKNOWN-DELIVERED {d.message_id} at {where[d.message_id]} sent +{d.sent_at - t0:.3f} "
                  f"resolved +{d.resolved_at - t0:.3f} {d.error_class}: {d.error}")
    print("  deliveries in send order (id status partition offset sent resolved | read back at):")
    for d in sorted(entries.values(), key=lambda d: d.sent_at):
        print(f"    {d.message_id[-7:]} {d.status:7} {d.partition} {d.offset} +{d.sent_at - t0:.3f} "
              f"+{d.resolved_at - t0:.3f} | {where.get(d.message_id)}")
    print("  read back in offset order:", [(p, o, k[-7:]) for (p, o), k in sorted(at.items())])
    lost_sent = [entries[m].sent_at for m in report.lost]
    lo, hi = min(lost_sent) - 1.5, max(entries[m].resolved_at for m in report.lost) + 0.5
    print("  log around the loss:")
    for stamp, line in ring.records:
        if lo <= stamp <= hi:
            print(f"    +{stamp - t0:.3f} {line}")
    return False


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--fault-s", type=float, default=3.0)
    parser.add_argument("--stop-on-loss", action="store_true")
    args = parser.parse_args()
    settings = Settings.from_env()
    ring = Ring()
    for name in ("aiokafka", "lab.clients"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(ring)
    failures = 0
    for _ in range(args.rounds):
        ring.records.clear()
        if not await one_round(settings, ClientProfile(), ring, args.fault_s):
            failures += 1
            if args.stop_on_loss:
                break
    print(f"{failures} of the rounds lost an acked message")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
