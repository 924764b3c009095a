"""The resilient clients against raw asyncpg and raw aiokafka, side by side in one run.

    python bench/clients_bench.py [--queries 4000] [--messages 20000] [--json FILE]

Needs the stack (`python -m lab up`); both sides use the same proxied endpoints.
* Postgres: acquire + SELECT 1, latency p50/p99 and throughput at concurrency
  1, 10 and 100 (pool max_size = concurrency), PostgresClient vs asyncpg's pool.
  Target: at most 1.1x raw asyncpg's latency.
* Kafka: producer throughput (100-byte messages, acks=all) with breaker and
  delivery ledger vs raw AIOKafkaProducer. Target: at least 0.9x. Also one
  producer vs two, to decide whether a producer pool is worth shipping.
Rounds alternate raw/ours so drift hits both alike; ratios are medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer  # noqa: E402
import asyncpg  # noqa: E402

from lab.clients import KafkaProducer, KafkaSettings, PostgresClient, PostgresSettings  # noqa: E402
from lab.config import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * (len(ordered) - 1)))]


async def pg_round(query, concurrency: int, total: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    per_worker = total // concurrency

    async def worker():
        for _ in range(per_worker):
            t0 = time.perf_counter()
            await query()
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, len(latencies) / (time.perf_counter() - started)


async def bench_postgres(dsn: str, total: int, rounds: int) -> dict:
    results = {}
    for concurrency in (1, 10, 100):
        raw_pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
        ours = await PostgresClient(PostgresSettings(dsn, min_size=concurrency, max_size=concurrency,
                                                     application_name="bench")).start()

        async def raw_query():
            async with raw_pool.acquire() as conn:
                return await conn.fetchval("SELECT 1")

        async def our_query():
            return await ours.fetchval("SELECT 1")

        await pg_round(raw_query, concurrency, 200)
        await pg_round(our_query, concurrency, 200)
        raw_l, raw_t, our_l, our_t = [], [], [], []
        for _ in range(rounds):
            latencies, throughput = await pg_round(raw_query, concurrency, total)
            raw_l.append(latencies), raw_t.append(throughput)
            latencies, throughput = await pg_round(our_query, concurrency, total)
            our_l.append(latencies), our_t.append(throughput)
        await raw_pool.close()
        await ours.close()
        entry = {
            "raw_p50_us": statistics.median(pct(l, 50) for l in raw_l) * 1e6,
            "raw_p99_us": statistics.median(pct(l, 99) for l in raw_l) * 1e6,
            "ours_p50_us": statistics.median(pct(l, 50) for l in our_l) * 1e6,
            "ours_p99_us": statistics.median(pct(l, 99) for l in our_l) * 1e6,
            "raw_qps": statistics.median(raw_t), "ours_qps": statistics.median(our_t),
        }
        # each round ran raw and ours back to back: the median of per-round ratios resists drift
        entry["p50_ratio"] = statistics.median(pct(o, 50) / pct(r, 50) for o, r in zip(our_l, raw_l))
        entry["p99_ratio"] = statistics.median(pct(o, 99) / pct(r, 99) for o, r in zip(our_l, raw_l))
        results[concurrency] = entry
    return results


async def raw_produce(bootstrap: str, topic: str, count: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        payload = b"x" * 100
        started = time.perf_counter()
        futures = [await producer.send(topic, payload, key=str(i).encode()) for i in range(count)]
        await asyncio.gather(*futures)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def our_produce(bootstrap: str, topic: str, count: int, producers: int = 1) -> float:
    clients = [await KafkaProducer(KafkaSettings(bootstrap, client_id=f"bench{i}", send_deadline_s=30)).start()
               for i in range(producers)]
    try:
        payload = b"x" * 100
        started = time.perf_counter()
        pending = [await clients[i % producers].enqueue(topic, payload, message_id=str(i)) for i in range(count)]
        deliveries = await asyncio.gather(*pending)
        elapsed = time.perf_counter() - started
        assert all(d.status == "acked" for d in deliveries), "bench sends must all be acknowledged"
        return count / elapsed
    finally:
        for client in clients:
            await client.stop()


async def bench_kafka(bootstrap: str, count: int, rounds: int) -> dict:
    raw, ours, pooled = [], [], []
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await raw_produce(bootstrap, topic, 1000)
    await our_produce(bootstrap, topic, 1000)
    for _ in range(rounds):
        raw.append(await raw_produce(bootstrap, topic, count))
        ours.append(await our_produce(bootstrap, topic, count))
        pooled.append(await our_produce(bootstrap, topic, count, producers=2))
    result = {"raw_msgs_s": statistics.median(raw), "ours_msgs_s": statistics.median(ours),
              "two_producers_msgs_s": statistics.median(pooled)}
    result["ratio"] = statistics.median(o / r for o, r in zip(ours, raw))
    result["two_vs_one"] = statistics.median(p / o for p, o in zip(pooled, ours))
    return result


async def main_async(args: argparse.Namespace) -> dict:
    settings = Settings.from_env()
    return {"postgres": await bench_postgres(settings.pg_dsn, args.queries, args.rounds),
            "kafka": await bench_kafka(settings.kafka_bootstrap, args.messages, args.rounds)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print("acquire + SELECT 1 through the proxy   (ours / raw asyncpg; target p50 <= 1.1x)")
    for concurrency, r in results["postgres"].items():
        print(f"  concurrency {concurrency:>3}: p50 {r['ours_p50_us']:7.0f} / {r['raw_p50_us']:7.0f} us "
              f"= {r['p50_ratio']:.2f}x   p99 {r['ours_p99_us']:7.0f} / {r['raw_p99_us']:7.0f} us "
              f"= {r['p99_ratio']:.2f}x   {r['ours_qps']:7.0f} / {r['raw_qps']:7.0f} q/s")
    k = results["kafka"]
    print(f"producer, 100 B, acks=all: ours {k['ours_msgs_s']:.0f} msg/s, raw aiokafka {k['raw_msgs_s']:.0f} msg/s "
          f"= {k['ratio']:.2f}x (target >= 0.9x)")
    print(f"two producers instead of one: {k['two_producers_msgs_s']:.0f} msg/s = {k['two_vs_one']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
