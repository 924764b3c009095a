"""Where a ProducerPool beats one KafkaProducer, and where it does not: interleaved rounds in one process.

    python -m lab up    # the stack the bench sends through (Tansu behind lab.proxy)
    python bench/pool_bench.py [--cases clean,latency,wedged] [--rounds 5] [--warmup 1] [--pool-size 4]
                               [--messages 5000] [--in-flight 1000] [--feeders 4] [--partitions N] [--latency-ms 50]
                               [--wedge-s 4] [--json FILE]

Both sides are the lab's own KafkaProducer with the same settings (acks=all, linger 5 ms): "one" is
one producer, "pool" a ProducerPool of ``--pool-size`` of them (fixed size; it still replaces a wedged
member). Each round opens both sides fresh, warms each with 200 sends, and runs them one after the
other, alternating which goes first; the verdict per case is the median of per-round ratios
(pool / one) with their min and max, after ``--warmup`` rounds that are printed but not counted.

``--partitions N`` creates each case's topic with N partitions first (else Tansu's default, 4).

Load: ``--feeders`` concurrent callers (as a service's request handlers are), ``--in-flight`` sends
outstanding at most between them (a new send as soon as one resolves), 100-byte messages, each with
its own id.

* clean:   the stack as it is; ``--messages`` per side; acknowledged messages per second.
* latency: a latency toxic of ``--latency-ms`` on the Kafka proxy (responses delayed), as clean.
* wedged:  after the warm-up one of the side's broker connections is black-holed (ConnectionBlackhole,
           nftables: needs root in the lab's network namespace), then the load runs for ``--wedge-s``;
           acknowledged messages per second within that time. One producer has one connection, so it
           is the one; the pool's member on that connection is replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from lab.clients import KafkaProducer, KafkaSettings  # noqa: E402
from lab.clients.ledger import ACKED, Delivery  # noqa: E402
from lab.clients.producer_pool import PoolConfig, ProducerPool  # noqa: E402
from lab.config import Settings  # noqa: E402
from lab.faults.connection import ConnectionBlackhole  # noqa: E402
from lab.faults.ledger import FaultLedger  # noqa: E402
from lab.proxy.client import ToxiproxyClient  # noqa: E402

PAYLOAD = b"x" * 100
WARM_SENDS = 200


def kafka_settings(bootstrap: str, client_id: str) -> KafkaSettings:
    return KafkaSettings(bootstrap, client_id=client_id, send_deadline_s=4.0, request_timeout_s=1.5,
                         stop_timeout_s=2.0, linger_ms=5)


class Side:
    def __init__(self, name: str, bootstrap: str, pool_size: int) -> None:
        self.name, self.bootstrap, self.pool_size = name, bootstrap, pool_size
        self.sender: Any = None

    async def open(self) -> None:
        settings = kafka_settings(self.bootstrap, f"bench-{self.name}")
        if self.name == "pool":
            config = PoolConfig(min_size=self.pool_size, max_size=self.pool_size, wedged_s=1.0, tick_s=0.05)
            self.sender = await ProducerPool(settings, config).start()
        else:
            self.sender = await KafkaProducer(settings).start()

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.stop()
            self.sender = None


async def load(side: Side, topic: str, count: int, in_flight: int, time_cap_s: float,
               feeders: int = 1) -> list[Delivery]:
    """Up to ``count`` sends from ``feeders`` concurrent callers, at most ``in_flight`` outstanding, starting none
    after ``time_cap_s``; every Delivery (each resolves by its deadline)."""
    slots = asyncio.Semaphore(in_flight)
    futures: list[asyncio.Future[Delivery]] = []
    stop_at = time.monotonic() + time_cap_s
    prefix = uuid.uuid4().hex[:8]
    numbers = iter(range(count))

    async def feed() -> None:
        for n in numbers:
            if time.monotonic() >= stop_at:
                break
            if slots.locked():  # wait_for costs a task and a loop turn: only when there is something to wait for
                try:
                    await asyncio.wait_for(slots.acquire(), max(0.0, stop_at - time.monotonic()))
                except asyncio.TimeoutError:
                    break
            else:
                await slots.acquire()  # returns at once, without a loop turn
            future = await side.sender.enqueue(topic, PAYLOAD, message_id=f"{prefix}-{n}")
            future.add_done_callback(lambda _: slots.release())
            futures.append(future)

    await asyncio.gather(*(feed() for _ in range(feeders)))
    return list(await asyncio.gather(*futures))


def acked_per_s(deliveries: list[Delivery], started: float, until: float | None = None) -> float:
    acked = [d.resolved_at for d in deliveries if d.status == ACKED and (until is None or d.resolved_at <= until)]
    if not acked:
        return 0.0
    end = until if until is not None else max(acked)
    return len(acked) / max(end - started, 1e-9)


async def measure(case: str, side: Side, args: argparse.Namespace, topic: str, port: int, state: Path) -> float:
    await side.open()
    try:
        await load(side, topic, WARM_SENDS, args.in_flight, 10.0)  # connections made, metadata known
        if case != "wedged":
            started = time.monotonic()
            deliveries = await load(side, topic, args.messages, args.in_flight, 60.0, args.feeders)
            return acked_per_s(deliveries, started)
        async with ConnectionBlackhole(FaultLedger(state / f"ledger-{uuid.uuid4().hex[:6]}"), port):
            started = time.monotonic()
            deliveries = await load(side, topic, 10**9, args.in_flight, args.wedge_s, args.feeders)
        return acked_per_s(deliveries, started, started + args.wedge_s)
    finally:
        await side.close()


async def run_case(case: str, args: argparse.Namespace, settings: Settings, state: Path) -> dict[str, Any]:
    sides = [Side("one", settings.kafka_bootstrap, args.pool_size), Side("pool", settings.kafka_bootstrap,
                                                                         args.pool_size)]
    proxy = ToxiproxyClient(settings.proxy_url, timeout_s=5)
    topic = f"poolbench-{case}-{uuid.uuid4().hex[:6]}"
    if args.partitions:
        await create_topic(settings.kafka_bootstrap, topic, args.partitions)
    rows = []
    if case == "latency":
        await proxy.add_toxic("kafka", "latency", name="pool-bench-latency", stream="downstream",
                              attributes={"latency": args.latency_ms})
    try:
        for number in range(args.warmup + args.rounds):
            order = sides if number % 2 == 0 else sides[::-1]
            rate: dict[str, float] = {}
            for side in order:
                rate[side.name] = await measure(case, side, args, topic, settings.kafka_proxy_port, state)
            warm = number < args.warmup
            ratio = rate["pool"] / rate["one"] if rate["one"] > 0 else float("inf")
            rows.append({"round": number + 1, "warmup": warm, "first": order[0].name, "one_msgs_s": rate["one"],
                         "pool_msgs_s": rate["pool"], "ratio": ratio})
            print(f"  {case:8} round {number + 1:>2}{' (warm-up)' if warm else '          '} {order[0].name:>4} first"
                  f"  one {rate['one']:8.0f} msg/s  pool {rate['pool']:8.0f} msg/s  ratio {ratio:.2f}", flush=True)
    finally:
        if case == "latency":
            await proxy.remove_toxic("kafka", "pool-bench-latency")
    counted = [r for r in rows if not r["warmup"]]
    ratios = [r["ratio"] for r in counted]
    return {"case": case, "rounds": rows, "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "one_median_msgs_s": statistics.median(r["one_msgs_s"] for r in counted),
            "pool_median_msgs_s": statistics.median(r["pool_msgs_s"] for r in counted)}


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """The bench's topic with ``partitions`` partitions (else the broker's default on first send: Tansu's 4)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        await asyncio.wait_for(admin.create_topics([NewTopic(topic, partitions, 1)]), 10)
    finally:
        await asyncio.wait_for(admin.close(), 10)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    settings = Settings.from_env()
    results = []
    with tempfile.TemporaryDirectory(prefix="pool-bench-") as state:
        for case in args.cases:
            if case == "wedged" and shutil.which("nft") is None:
                print("  wedged: skipped (needs nft, and root in the lab's network namespace)")
                continue
            results.append(await run_case(case, args, settings, Path(state)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="clean,latency,wedged")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--feeders", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=0, help="create each case's topic with this many "
                        "partitions (0: the broker's default on first send)")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--wedge-s", type=float, default=4.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(args.cases) - {"clean", "latency", "wedged"}
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}: choose from clean, latency, wedged")
    if min(args.rounds, args.pool_size, args.messages, args.in_flight, args.feeders) < 1 or args.warmup < 0 \
            or args.wedge_s <= 0:
        parser.error("--rounds, --pool-size, --messages, --in-flight and --feeders must be at least 1, "
                     "--warmup at least 0, --wedge-s above 0")
    print(f"pool of {args.pool_size} vs one KafkaProducer, 100 B messages, {args.in_flight} in flight from "
          f"{args.feeders} callers, acks=all; "
          f"{args.rounds} rounds after {args.warmup} warm-up(s), sides alternating first")
    results = asyncio.run(main_async(args))
    for r in results:
        print(f"{r['case']:8} pool / one: median of per-round ratios {r['ratio_median']:.2f} "
              f"(min {r['ratio_min']:.2f}, max {r['ratio_max']:.2f}); medians one {r['one_median_msgs_s']:.0f} "
              f"msg/s, pool {r['pool_median_msgs_s']:.0f} msg/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
