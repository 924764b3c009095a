"""Per-call overhead of a CLOSED circuit breaker around an async no-op, side by side in one process.

    python bench/breaker_bench.py [--calls 200000] [--rounds 7] [--baseline-ref REF] [--clock cpu|wall]
                                  [--json FILE]

Each round times every contender once, in an order that rotates from round to
round (so drift and warm-up hit all alike). Ours runs with a count window of
100. The guard: ``--baseline-ref`` names a commit whose ``lab/resilience/breaker.py``
is loaded beside the current one (default: the breaker before its states became
objects, issue #12 item 4); the report gives the median of the per-round ratios
current / baseline with their spread, so "no slower" is read from one run on one
machine. The pair is timed twice: with the count window (a healthy breaker's
window is full of successes, and ours skips recording one more) and with a
10-second time window (every success is recorded, by both). Rounds are timed in this thread's CPU time by default (``--clock cpu``):
on a machine shared with other work, wall time would also count their time
slices. pybreaker guards a sync no-op (its async support needs Tornado), the
rest an async one. Target (issue #4): <= 700 ns per guarded call, below every peer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: main before the breaker's states became objects (issue #12 item 4): the breaker the guard compares against.
BASELINE_REF = "ac5e6d1"
BASELINE = "baseline breaker"
OURS = "lab.resilience"
#: the same pair with a 10-second time window: every success is recorded (no skip for a window full of successes)
BASELINE_TIME = "baseline, time win"
OURS_TIME = "ours, time window"
GUARDS = ((OURS, BASELINE), (OURS_TIME, BASELINE_TIME))


async def noop() -> None:
    return None


def sync_noop() -> None:
    return None


def load_baseline(ref: str) -> Any:
    """The CircuitBreaker class of ``ref``'s lab/resilience/breaker.py, loaded as a sibling of the current
    module (so it uses today's windows, config and events). A clear SystemExit if git cannot show it."""
    try:
        source = subprocess.run(["git", "show", f"{ref}:lab/resilience/breaker.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise SystemExit(f"breaker_bench: cannot read the baseline breaker at {ref!r} with git: {err}") from None
    import lab.resilience  # noqa: F401  (the package the baseline's relative imports resolve in)

    module = types.ModuleType("lab.resilience._baseline_breaker")
    module.__package__ = "lab.resilience"
    sys.modules[module.__name__] = module
    exec(compile(source, f"{ref}:lab/resilience/breaker.py", "exec"), module.__dict__)
    return module.CircuitBreaker


#: What a round is timed with: "cpu" (this thread's CPU time: a shared machine's other work is not counted) or
#: "wall".
CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


async def build(baseline_ref: str, now: Callable[[], float]) -> dict[str, Callable[[int], Awaitable[float]]]:
    import aiobreaker
    import circuitbreaker
    import pybreaker
    from purgatory import AsyncCircuitBreakerFactory

    from lab.resilience import BreakerConfig, CircuitBreaker

    config = BreakerConfig(sliding_window_size=100, minimum_number_of_calls=100)
    time_config = BreakerConfig(sliding_window_type="time", sliding_window_size=10, minimum_number_of_calls=100)
    baseline_class = load_baseline(baseline_ref)
    ours = CircuitBreaker("bench", config)
    baseline = baseline_class("bench-baseline", config)
    ours_time = CircuitBreaker("bench-time", time_config)
    baseline_time = baseline_class("bench-baseline-time", time_config)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30, name="bench")
    cb_noop = cb(noop)
    aio = aiobreaker.CircuitBreaker(fail_max=5)
    py = pybreaker.CircuitBreaker(fail_max=5)
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    purgatory_noop = factory("bench")(noop)
    await purgatory_noop()  # creates the circuit

    async def bare(n: int) -> float:
        start = now()
        for _ in range(n):
            await noop()
        return now() - start

    def guarded_by(breaker: Any) -> Callable[[int], Awaitable[float]]:
        async def run(n: int) -> float:
            call = breaker.call
            start = now()
            for _ in range(n):
                await call(noop)
            return now() - start
        return run

    async def circuit(n: int) -> float:
        start = now()
        for _ in range(n):
            await cb_noop()
        return now() - start

    async def aiob(n: int) -> float:
        call = aio.call_async
        start = now()
        for _ in range(n):
            await call(noop)
        return now() - start

    async def pyb(n: int) -> float:
        call = py.call
        start = now()
        for _ in range(n):
            call(sync_noop)
        return now() - start

    async def purg(n: int) -> float:
        start = now()
        for _ in range(n):
            await purgatory_noop()
        return now() - start

    return {"bare await": bare, OURS: guarded_by(ours), BASELINE: guarded_by(baseline),
            OURS_TIME: guarded_by(ours_time), BASELINE_TIME: guarded_by(baseline_time), "circuitbreaker": circuit,
            "aiobreaker": aiob, "pybreaker (sync)": pyb, "purgatory": purg}


async def run(calls: int, rounds: int, baseline_ref: str, now: Callable[[], float]) -> dict[str, list[float]]:
    """ns per call, per contender, one sample per round."""
    contenders = await build(baseline_ref, now)
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name, fn in contenders.items():  # warm-up
        await fn(max(1000, calls // 20) // (20 if name == "purgatory" else 1))
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            n = calls // 20 if name == "purgatory" else calls  # purgatory is ~100x slower: fewer calls, same accuracy
            samples[name].append(await contenders[name](n) / n * 1e9)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    samples = asyncio.run(run(args.calls, args.rounds, args.baseline_ref, CLOCKS[args.clock]))
    results = {name: statistics.median(values) for name, values in samples.items()}
    ours = results[OURS]
    print(f"{args.rounds} rounds of {args.calls} calls, timed by {args.clock} time; median per contender")
    print(f"{'contender':<18} {'ns/call':>9}   {OURS} is")
    for name, ns in results.items():
        ratio = "" if name == OURS else f"{ours / ns:.2f}x the time of {name}"
        print(f"{name:<18} {ns:>9.0f}   {ratio}")
    guards = {}
    for subject, base in GUARDS:
        ratios = sorted(new / old for new, old in zip(samples[subject], samples[base]))
        guard = statistics.median(ratios)
        guards[subject] = {"median": guard, "ratios": ratios}
        print(f"guard: {subject} / {base} ({args.baseline_ref}) = {guard:.3f}x, median of {len(ratios)} per-round "
              f"ratios (spread {ratios[0]:.3f}-{ratios[-1]:.3f}) -> {'no slower' if guard <= 1.0 else 'SLOWER'}")
    print(f"target: <= 700 ns per guarded call -> {'met' if ours <= 700 else 'NOT met'} ({ours:.0f} ns)")
    if args.json:
        args.json.write_text(json.dumps({"median_ns": results, "samples_ns": samples, "guards": guards,
                                         "baseline_ref": args.baseline_ref}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
