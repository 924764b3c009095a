"""Our KafkaProducer against raw aiokafka, pipelined, round by round in one process.

    python bench/producer_bench.py [--rounds 10] [--warmup 2] [--messages 20000] [--window 1000]
                                   [--broker proxy|direct] [--one-instance] [--json FILE]

Each round sends ``--messages`` 100-byte messages (acks=all, linger 5 ms) from
each side, ``--window`` futures in flight at a time (enqueue a window, await it,
next window). Both sides get identical AIOKafkaProducer settings and keys; ours
adds the breaker permit, a ledger entry per send and the per-send deadline.
Rounds alternate which side goes first so drift hits both alike; the verdict is
the median of per-round ratios (ours / raw) with its min and max, after
``--warmup`` rounds that are printed but not counted. Per-round throughput of
both sides is printed so a side that slows down round after round shows.

* ``--broker proxy`` (default): the stack's Kafka endpoint (Tansu through lab.proxy);
  needs ``python -m lab up``.
* ``--broker direct``: starts a private Tansu (memory storage) on a free port that
  advertises itself, so no proxy is in the path; stopped at the end.
* ``--one-instance``: one producer per side for all rounds (a long-running
  producer) instead of a fresh one per round; shows whether anything grows
  within one instance.

Also prints the producer process's peak RSS growth and the ledger's retained
size, so the memory bound of the ledger is visible next to the speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import AsyncIterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer  # noqa: E402

from lab.clients import KafkaProducer, KafkaSettings  # noqa: E402
from lab.config import Settings  # noqa: E402

PAYLOAD = b"x" * 100
LINGER_MS = 5


def raw_producer(bootstrap: str) -> AIOKafkaProducer:
    """The same AIOKafkaProducer settings KafkaProducer.start() uses (see lab/clients/kafka.py)."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="bench-raw", acks="all", enable_idempotence=False,
                            request_timeout_ms=2000, linger_ms=LINGER_MS, retry_backoff_ms=100,
                            metadata_max_age_ms=30_000, connections_max_idle_ms=60_000)


class RawSide:
    name = "raw"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None

    async def open(self) -> None:
        self.producer = raw_producer(self.bootstrap)
        await self.producer.start()

    async def close(self) -> None:
        if self.producer is not None:
            await asyncio.wait_for(self.producer.stop(), 10)
            self.producer = None

    async def send_window(self, topic: str, ids: range) -> float:
        """Send one window pipelined; seconds it took."""
        producer = self.producer
        assert producer is not None
        started = time.perf_counter()
        futures = [await producer.send(topic, PAYLOAD, key=str(i).encode()) for i in ids]
        await asyncio.gather(*futures)
        return time.perf_counter() - started


class OurSide:
    name = "ours"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: KafkaProducer | None = None

    async def open(self) -> None:
        self.producer = await KafkaProducer(KafkaSettings(self.bootstrap, client_id="bench-ours",
                                                          send_deadline_s=30, linger_ms=LINGER_MS)).start()

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send_window(self, topic: str, ids: range) -> float:
        """Send one window pipelined (each send a future of its Delivery); seconds it took."""
        producer = self.producer
        assert producer is not None
        started = time.perf_counter()
        futures = [await producer.enqueue(topic, PAYLOAD, message_id=str(i)) for i in ids]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
        counts = producer.ledger.counts()
        if counts["failed"] or counts["unknown"]:
            raise SystemExit(f"bench sends must all be acknowledged; ledger says {counts}")
        return elapsed


@contextlib.asynccontextmanager
async def private_tansu() -> AsyncIterator[str]:
    """A Tansu of our own on a free port, advertising itself: the broker with no proxy in the path."""
    from lab.stack.kafka import find_tansu

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tempfile.NamedTemporaryFile(prefix="bench-tansu-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(find_tansu(Settings.from_env())), "broker",
                             "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                             "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                probe_producer = raw_producer(f"127.0.0.1:{port}")
                await asyncio.wait_for(probe_producer.start(), 3)
                await asyncio.wait_for(probe_producer.stop(), 3)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"private tansu did not come up on port {port}; log: {log.name}")
                await asyncio.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def one_round(sides: list, topic: str, args: argparse.Namespace, first_id: int, raw_first: bool) -> dict:
    """Both sides send ``args.messages``; seconds per side.

    ``--interleave window`` (default) alternates the sides window by window
    (the order of each pair alternating too), so load from other processes that
    changes over a second hits both alike; ``--interleave round`` sends one
    side's whole round, then the other's.
    """
    order = sides if raw_first else sides[::-1]
    # window pairs: raw takes the even ids of each pair, ours the odd ones (or the other way round)
    windows = [range(base, min(base + 2 * args.window, first_id + 2 * args.messages), 2)
               for base in range(first_id, first_id + 2 * args.messages, 2 * args.window)]
    seconds = {side.name: 0.0 for side in sides}
    if args.interleave == "round":
        for offset, side in enumerate(order):
            for ids in windows:
                seconds[side.name] += await side.send_window(topic, range(ids.start + offset, ids.stop + offset, 2))
        return seconds
    for number, ids in enumerate(windows):
        pair = order if number % 2 == 0 else order[::-1]
        for offset, side in enumerate(pair):
            seconds[side.name] += await side.send_window(topic, range(ids.start + offset, ids.stop + offset, 2))
    return seconds


async def run(bootstrap: str, args: argparse.Namespace) -> dict:
    topic = f"pbench-{uuid.uuid4().hex[:8]}"
    sides = [RawSide(bootstrap), OurSide(bootstrap)]
    if args.one_instance:
        for side in sides:
            await side.open()
    rows = []
    rss_start_mb = peak_rss_mb()
    try:
        for number in range(args.warmup + args.rounds):
            if not args.one_instance:
                for side in sides:
                    await side.open()
            gc.collect()
            raw_first = number % 2 == 0
            seconds = await one_round(sides, topic, args, number * 2 * args.messages, raw_first)
            ledger = sides[1].producer.ledger
            if not args.one_instance:
                for side in sides:
                    await side.close()
            warm = number < args.warmup
            row = {"round": number + 1, "warmup": warm, "first": "raw" if raw_first else "ours",
                   "raw_msgs_s": args.messages / seconds["raw"], "ours_msgs_s": args.messages / seconds["ours"],
                   "ledger_kept": len(ledger), "ledger_evicted": ledger.evicted}
            row["ratio"] = row["ours_msgs_s"] / row["raw_msgs_s"]
            rows.append(row)
            print(f"  round {number + 1:>2}{' (warm-up)' if warm else '          '}  {row['first']:>4} first  "
                  f"raw {row['raw_msgs_s']:8.0f} msg/s  ours {row['ours_msgs_s']:8.0f} msg/s  "
                  f"ratio {row['ratio']:.3f}   ledger {len(ledger)} kept, {ledger.evicted} evicted", flush=True)
    finally:
        if args.one_instance:
            for side in sides:
                await side.close()
    counted = [r for r in rows if not r["warmup"]]
    ratios = [r["ratio"] for r in counted]
    return {"broker": args.broker, "bootstrap": bootstrap, "one_instance": args.one_instance,
            "interleave": args.interleave, "messages": args.messages, "window": args.window, "rounds": rows,
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "raw_median_msgs_s": statistics.median(r["raw_msgs_s"] for r in counted),
            "ours_median_msgs_s": statistics.median(r["ours_msgs_s"] for r in counted),
            "peak_rss_growth_mb": peak_rss_mb() - rss_start_mb}


async def main_async(args: argparse.Namespace) -> dict:
    if args.broker == "direct":
        async with private_tansu() as bootstrap:
            return await run(bootstrap, args)
    return await run(Settings.from_env().kafka_bootstrap, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--broker", choices=("proxy", "direct"), default="proxy")
    parser.add_argument("--one-instance", action="store_true")
    parser.add_argument("--interleave", choices=("window", "round"), default="window")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.rounds < 1 or args.messages < 1 or args.window < 1 or args.warmup < 0:
        parser.error("--rounds, --messages and --window must be at least 1, --warmup at least 0")
    print(f"producer, {args.messages} x 100 B per side per round, windows of {args.window} futures, acks=all, "
          f"broker: {args.broker}, {'one instance per side' if args.one_instance else 'fresh producers per round'}, "
          f"sides interleaved by {args.interleave}")
    result = asyncio.run(main_async(args))
    print(f"ours / raw aiokafka: median of per-round ratios {result['ratio_median']:.3f} "
          f"(min {result['ratio_min']:.3f}, max {result['ratio_max']:.3f}, {args.rounds} rounds after "
          f"{args.warmup} warm-ups; target >= 0.9)")
    print(f"medians: raw {result['raw_median_msgs_s']:.0f} msg/s, ours {result['ours_median_msgs_s']:.0f} msg/s; "
          f"peak RSS of the process grew {result['peak_rss_growth_mb']:.1f} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
