"""ProducerPool on the real local stack: it grows under a slow broker, shrinks when idle, and replaces a
member whose connection is black-holed (ConnectionBlackhole: nftables in the test's network namespace)
without losing what that member acked or was given."""

from __future__ import annotations

import asyncio
import collections
import shutil
import time
import uuid

import pytest

from lab.clients import ConsumerSettings, KafkaConsumer, KafkaSettings, check_delivery
from lab.clients.envelope import envelope_id
from lab.clients.ledger import ACKED
from lab.clients.producer_pool import PoolConfig, PoolEvent, ProducerPool
from lab.faults.connection import ConnectionBlackhole, established_local_ports
from lab.faults.ledger import FaultLedger
from lab.clients.envelope import Envelope

pytestmark = pytest.mark.integration

SETTINGS = dict(send_deadline_s=4.0, request_timeout_s=1.5, stop_timeout_s=2.0)


def topic_name() -> str:
    return f"pool-{uuid.uuid4().hex[:8]}"


async def send_batch(pool: ProducerPool, topic: str, first: int, count: int) -> list:
    futures = [await pool.enqueue(topic, b"x" * 100, message_id=f"{topic}-{n:06d}",
                                  headers=None) for n in range(first, first + count)]
    return list(await asyncio.gather(*futures))


async def read_ids(stack, topic: str) -> list[str]:
    async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
        records = await consumer.read_all(topic, timeout_s=10)
    return [r.key.decode() for r in records]


@pytest.mark.skipif(shutil.which("nft") is None, reason="ConnectionBlackhole needs nft")
async def test_a_black_holed_member_is_replaced_and_nothing_it_acked_or_held_is_lost(stack, tmp_path):
    events: list[PoolEvent] = []
    config = PoolConfig(min_size=3, max_size=3, wedged_s=1.0, tick_s=0.05, replace_cooldown_s=0.5)
    topic = topic_name()
    pool = await ProducerPool(KafkaSettings(stack.kafka, client_id="pool-test", **SETTINGS), config,
                              on_event=events.append).start()
    sent = 0
    try:
        first = await send_batch(pool, topic, 0, 30)  # every member gets sends, so each has its connection
        sent += 30
        assert all(d.status == ACKED for d in first)
        assert len(established_local_ports(stack.ports["kafka_proxy"])) == 3
        fault = ConnectionBlackhole(FaultLedger(tmp_path / "ledger"), stack.ports["kafka_proxy"])
        acked_during = 0
        async with fault:
            stop_at = time.monotonic() + 3.0
            while time.monotonic() < stop_at:
                batch = await send_batch(pool, topic, sent, 20)
                sent += 20
                acked_during += sum(d.status == ACKED for d in batch)
                await asyncio.sleep(0.02)
        replaced = [e for e in events if e.kind == "replace"]
        assert len(replaced) == 1, events
        assert "wedged" in replaced[0].reason
        assert len(pool) == 3 and replaced[0].member not in {h.member for h in pool.health()}
        assert acked_during > 0
    finally:
        await pool.stop()
    counts = pool.ledger.counts()
    assert sum(counts.values()) == sent, counts  # one ledger entry per send, the replaced member's included
    assert counts["unknown"] >= 1  # what the wedged member held resolved as unknown, not dropped
    report = check_delivery(pool.ledger, await read_ids(stack, topic), topic=topic)
    assert report.ok and report.complete, report.summary() + await _loss_evidence(stack, pool, topic, report.lost)
    stats = pool.topic_stats()[topic]
    assert (stats.sent, stats.acked, stats.unknown, stats.failed) == (sent, counts["acked"], counts["unknown"],
                                                                       counts["failed"])


async def _loss_evidence(stack, pool: ProducerPool, topic: str, lost: tuple[str, ...]) -> str:
    """Where the broker said each lost message went, what is there now, the partition's high watermark and
    what ListOffsets calls its beginning, and whether it acked one offset twice: the evidence to tell a
    broker's fault from the pool's. Seen once in CI before read_all read from offset 0: a first-batch
    message skipped because Tansu's ListOffsets EARLIEST is the first-WRITTEN batch's offset
    (bench/repro_first_batch_race.py). A message acked at or past the high watermark is Tansu's too."""
    if not lost:
        return ""
    async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
        records = await consumer.read_all(topic, timeout_s=10)
        assigned = list(consumer.raw.assignment())
        highwater = {tp.partition: consumer.raw.highwater(tp) for tp in assigned}
        listed_start = {tp.partition: o for tp, o in (await consumer.raw.beginning_offsets(assigned)).items()}
    at = {(r.partition, r.offset): r.key.decode() for r in records}
    acked = [d for d in pool.ledger.entries if d.topic == topic and d.status == ACKED]
    places = collections.Counter((d.partition, d.offset) for d in acked)
    lines = [f"{d.message_id} acked at {d.partition}:{d.offset}, holding {at.get((d.partition, d.offset))!r} now, "
             f"high watermark {highwater.get(d.partition)}, listed beginning {listed_start.get(d.partition)}"
             + (" (at or past the high watermark: the broker's)"
                if d.offset is not None and d.offset >= (highwater.get(d.partition) or 0) else "")
             for d in acked if d.message_id in lost]
    return (f"\n{'; '.join(lines)}; offsets acked twice: {[k for k, n in places.items() if n > 1][:5]}; "
            f"offsets read: {len(at)}, highest {max(at) if at else None}")


async def test_a_slow_broker_grows_the_pool_and_idleness_shrinks_it(stack, proxy):
    events: list[PoolEvent] = []
    config = PoolConfig(min_size=1, max_size=3, p95_latency_s=0.05, idle_s=0.5, cooldown_s=0.2, tick_s=0.05)
    topic = topic_name()
    pool = await ProducerPool(KafkaSettings(stack.kafka, client_id="pool-grow", **SETTINGS), config,
                              on_event=events.append).start()
    try:
        await proxy.add_toxic("kafka", "latency", name="slow", stream="downstream", attributes={"latency": 100})
        stop_at = time.monotonic() + 2.0
        n = 0
        while time.monotonic() < stop_at and len(pool) < 3:
            deliveries = await send_batch(pool, topic, n, 20)
            n += 20
            assert all(d.status == ACKED for d in deliveries)
        assert len(pool) == 3, events
        ups = [e for e in events if e.kind == "scale_up"]
        assert [(e.size_before, e.size_after) for e in ups] == [(1, 2), (2, 3)]
        assert all("p95 latency" in e.reason for e in ups)
        await proxy.remove_toxic("kafka", "slow")
        await send_batch(pool, topic, n, 1)
        deadline = time.monotonic() + 5.0
        while len(pool) > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(pool) == 1, events
        downs = [e for e in events if e.kind == "scale_down"]
        assert [(e.size_before, e.size_after) for e in downs] == [(3, 2), (2, 1)]
        health = pool.health()
        assert [h.state for h in health] == ["healthy"]
    finally:
        await pool.stop()


async def test_envelopes_through_the_pool_are_read_back_by_id(stack):
    topic = topic_name()
    async with ProducerPool(KafkaSettings(stack.kafka, client_id="pool-env", **SETTINGS),
                            PoolConfig(min_size=2, max_size=2)) as pool:
        deliveries = [await pool.send_envelope(topic, Envelope(type="t", source="s", payload=b"p")) for _ in range(5)]
    assert all(d.status == ACKED for d in deliveries)
    async with KafkaConsumer(ConsumerSettings(stack.kafka)) as consumer:
        records = await consumer.read_all(topic, timeout_s=10)
    assert sorted(envelope_id(r.headers) or "" for r in records) == sorted(d.message_id for d in deliveries)


@pytest.mark.skipif(shutil.which("nft") is None, reason="ConnectionBlackhole needs nft")
async def test_the_black_hole_drops_exactly_one_connection_and_heals(tmp_path):
    """Real packets dropped: a request on the chosen connection gets no answer, one on another does, and after
    the heal (from the ledger's data alone, as `lab heal` does) the chosen one answers again."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        busy, quiet = await asyncio.open_connection("127.0.0.1", port), await asyncio.open_connection("127.0.0.1", port)
        assert await _round_trip(*busy, b"x" * 4096) and await _round_trip(*quiet, b"y")  # busy: the busiest
        fault = ConnectionBlackhole(FaultLedger(tmp_path / "ledger"), port)
        await fault.inject()
        try:
            assert fault.local_port == busy[1].get_extra_info("sockname")[1]
            assert not await _round_trip(*busy, b"z")
            assert await _round_trip(*quiet, b"z")
        finally:
            await ConnectionBlackhole.heal_from(fault.heal_data())
        assert await _round_trip(*busy, b"", expect=b"z")  # the dropped byte, retransmitted after the heal
        await ConnectionBlackhole.heal_from(fault.heal_data())  # twice: harmless
        for _, writer in (busy, quiet):
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
                      expect: bytes | None = None) -> bool:
    writer.write(data)
    await writer.drain()
    want = len(expect if expect is not None else data)
    try:
        got = await asyncio.wait_for(reader.readexactly(want), 3.0 if expect is not None else 1.0)
    except asyncio.TimeoutError:
        return False
    return got == (expect if expect is not None else data)


async def test_a_member_whose_breaker_stays_open_is_replaced(stack):
    """A fenced member (its breaker OPEN, so every send to it would fail at once) is routed around, then
    replaced once OPEN for ``open_s``; the pool keeps sending meanwhile."""
    events: list[PoolEvent] = []
    config = PoolConfig(min_size=2, max_size=2, open_s=0.3, tick_s=0.05, replace_cooldown_s=0.1)
    topic = topic_name()
    async with ProducerPool(KafkaSettings(stack.kafka, client_id="pool-fenced", **SETTINGS), config,
                            on_event=events.append) as pool:
        fenced = pool.members[0]
        fenced.producer.breaker.transition_to_open()
        deliveries = await send_batch(pool, topic, 0, 10)
        assert all(d.status == ACKED for d in deliveries)  # none went to the OPEN member
        deadline = time.monotonic() + 3.0
        while not any(e.kind == "replace" for e in events) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        replaced = [e for e in events if e.kind == "replace"]
        assert [e.member for e in replaced] == [fenced.name], events
        assert "breaker OPEN" in replaced[0].reason
        assert fenced not in pool.members and len(pool) == 2
