"""Race several producers' first sends to a topic that does not exist yet; report overlapping acks and losses.

Why: the producer pool test lost one acked message of its FIRST batch once in CI
("944 acked, 943 read back": message 9, before any fault). Its three members each
ask for the new topic's metadata at the same moment, so each asks the broker to
auto-create it. In Tansu (dynostore, memory://), the request that wins the
creation then resets every partition's watermark (high and low to None) one
partition after another, while a loser, told the topic exists, may already have
produced to a partition not reset yet: after the reset that partition hands out
offset 0 again. This script makes exactly that race, many times, with raw
aiokafka producers (no code of ours on the produce path), and reports per round:

* produce errors (the batch put at an offset whose object exists fails: Tansu
  answers UNKNOWN_SERVER_ERROR, which aiokafka does not retry);
* offsets acknowledged to two different messages (an offset handed out twice);
* acked messages a read from ``seek_to_beginning`` to the listed end offsets does
  not return, and those KafkaConsumer.read_all (from offset 0 to the fetch's high
  watermark) does not return, with what ListOffsets(EARLIEST) answers per partition.

Found with it (lab.clients.kafka.KafkaConsumer.read_all's docstring): most of
what a read from "the beginning" missed is on the broker; Tansu answers
ListOffsets EARLIEST with the offset of the batch object modified first (and
LATEST with the last-modified batch's base offset + 1), so when two producers'
batches for a partition are stored out of offset order, "the beginning" is past
the first batch. Rarer (2 rounds of 400), and the broker's: records acknowledged
at offsets at or past the partition's high watermark, which no fetch returns.

Usage (stack up; LAB_* env as for ``python -m lab``):
    python bench/repro_first_batch_race.py --rounds 200 [--producers 3] [--messages 30] [--create-first]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402

from lab.clients import ConsumerSettings, KafkaConsumer  # noqa: E402
from lab.config import Settings  # noqa: E402


async def one_round(bootstrap: str, producers: list[AIOKafkaProducer], messages: int,
                    create_first: bool) -> dict[str, object]:
    topic = f"race-{uuid.uuid4().hex[:8]}"
    if create_first:  # one producer's metadata request creates the topic before any other asks
        await producers[0].partitions_for(topic)

    async def send(n: int) -> tuple[str, object]:
        key = f"{topic}-{n:06d}"
        try:
            metadata = await producers[n % len(producers)].send_and_wait(topic, b"x" * 100, key=key.encode())
            return key, (metadata.partition, metadata.offset)
        except Exception as err:  # the evidence: which error, for which message
            return key, err

    results = dict(await asyncio.gather(*(send(n) for n in range(messages))))
    acked = {k: v for k, v in results.items() if isinstance(v, tuple)}
    errors = {k: repr(v) for k, v in results.items() if not isinstance(v, tuple)}
    places = collections.Counter(acked.values())
    twice = sorted(place for place, n in places.items() if n > 1)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=5000)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or
                                                                await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        read: list[tuple[str, int, int]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                read += [(r.key.decode(), r.partition, r.offset) for r in records]
    finally:
        await consumer.stop()
    read_keys = {k for k, _, _ in read}
    lost = sorted(k for k in acked if k not in read_keys)
    async with KafkaConsumer(ConsumerSettings(bootstrap)) as ours:  # from offset 0, to the fetch's high watermark
        ours_keys = {r.key.decode() for r in await ours.read_all(topic, timeout_s=10)}
    lost_from_zero = sorted(k for k in acked if k not in ours_keys)
    earliest = {tp.partition: o for tp, o in (await _earliest(bootstrap, partitions)).items()}
    return {"topic": topic, "acked": len(acked), "errors": errors, "twice": twice, "lost": lost,
            "lost_from_zero": lost_from_zero, "earliest_listed": earliest,
            "lost_at": {k: acked[k] for k in lost}, "read": len(read),
            "end_offsets": {tp.partition: ends[tp] for tp in partitions},
            "acked_per_partition": dict(collections.Counter(p for p, _ in acked.values())),
            "where_lost": {p: {"acked": sorted((o, k[-3:]) for k, (q, o) in acked.items() if q == p),
                               "read": sorted((o, k[-3:]) for k, q, o in read if q == p)}
                           for p in {acked[k][0] for k in lost}}}


async def _earliest(bootstrap: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.beginning_offsets(partitions))
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # aiokafka has no public way to ask for one topic's metadata
    return consumer.partitions_for_topic(topic) or set()


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--producers", type=int, default=3)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--create-first", action="store_true",
                        help="one producer asks for the topic's metadata (creating it) before the others send")
    args = parser.parse_args()
    bootstrap = Settings.from_env().kafka_bootstrap
    producers = [AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=f"race-{i}", acks="all",
                                  enable_idempotence=False, linger_ms=5, request_timeout_ms=5000)
                 for i in range(args.producers)]
    for producer in producers:
        await producer.start()
    bad = errors = twice = lost = lost_from_zero = 0
    try:
        for _ in range(args.rounds):
            report = await one_round(bootstrap, producers, args.messages, args.create_first)
            if report["errors"] or report["twice"] or report["lost"]:
                bad += 1
                errors += len(report["errors"])  # type: ignore[arg-type]
                twice += len(report["twice"])  # type: ignore[arg-type]
                lost += len(report["lost"])  # type: ignore[arg-type]
                lost_from_zero += len(report["lost_from_zero"])  # type: ignore[arg-type]
                print(report, flush=True)
    finally:
        for producer in producers:
            await producer.stop()
    print(f"{args.rounds} rounds of {args.producers} producers x {args.messages} first sends to a new topic"
          f"{' (created first by one producer)' if args.create_first else ''}: "
          f"{bad} rounds went wrong ({errors} produce errors, {twice} offsets acked twice, {lost} acked not read "
          f"from seek_to_beginning to the listed end, {lost_from_zero} not read by KafkaConsumer.read_all)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
