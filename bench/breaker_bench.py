"""Per-call overhead of a CLOSED circuit breaker around an async no-op, side by side in one process.

    python bench/breaker_bench.py [--calls 200000] [--rounds 5] [--json FILE]

Each round times every contender once, in turn (interleaved, so drift hits all
alike); the median round is reported. Ours runs with a count window of 100.
pybreaker guards a sync no-op (its async support needs Tornado), the rest an
async one. Target (issue #4): <= 700 ns per guarded call, below every peer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def noop() -> None:
    return None


def sync_noop() -> None:
    return None


async def build() -> dict[str, Callable[[int], Awaitable[float]]]:
    import aiobreaker
    import circuitbreaker
    import pybreaker
    from purgatory import AsyncCircuitBreakerFactory

    from lab.resilience import BreakerConfig, CircuitBreaker

    ours = CircuitBreaker("bench", BreakerConfig(sliding_window_size=100, minimum_number_of_calls=100))
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30, name="bench")
    cb_noop = cb(noop)
    aio = aiobreaker.CircuitBreaker(fail_max=5)
    py = pybreaker.CircuitBreaker(fail_max=5)
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    purgatory_noop = factory("bench")(noop)
    await purgatory_noop()  # creates the circuit

    async def bare(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await noop()
        return time.perf_counter() - start

    async def lab(n: int) -> float:
        call = ours.call
        start = time.perf_counter()
        for _ in range(n):
            await call(noop)
        return time.perf_counter() - start

    async def circuit(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await cb_noop()
        return time.perf_counter() - start

    async def aiob(n: int) -> float:
        call = aio.call_async
        start = time.perf_counter()
        for _ in range(n):
            await call(noop)
        return time.perf_counter() - start

    async def pyb(n: int) -> float:
        call = py.call
        start = time.perf_counter()
        for _ in range(n):
            call(sync_noop)
        return time.perf_counter() - start

    async def purg(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await purgatory_noop()
        return time.perf_counter() - start

    return {"bare await": bare, "lab.resilience": lab, "circuitbreaker": circuit, "aiobreaker": aiob,
            "pybreaker (sync)": pyb, "purgatory": purg}


async def run(calls: int, rounds: int) -> dict[str, float]:
    contenders = await build()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for name, fn in contenders.items():  # warm-up
        await fn(max(1000, calls // 20) // (20 if name == "purgatory" else 1))
    for _ in range(rounds):
        for name, fn in contenders.items():
            n = calls // 20 if name == "purgatory" else calls  # purgatory is ~100x slower: fewer calls, same accuracy
            samples[name].append(await fn(n) / n * 1e9)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(run(args.calls, args.rounds))
    ours = results["lab.resilience"]
    print(f"{'contender':<18} {'ns/call':>9}   lab.resilience is")
    for name, ns in results.items():
        ratio = "" if name == "lab.resilience" else f"{ours / ns:.2f}x the time of {name}"
        print(f"{name:<18} {ns:>9.0f}   {ratio}")
    print(f"target: <= 700 ns per guarded call -> {'met' if ours <= 700 else 'NOT met'} ({ours:.0f} ns)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
