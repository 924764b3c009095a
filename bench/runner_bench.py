"""What the runner adds to each operation of a target: the workload's task, its history event, the breaker-state
read, against awaiting the same operation bare.

    python bench/runner_bench.py [--ops 20000] [--rounds 5] [--clock cpu|wall]

The operation is a no-op coroutine, so what is measured is the runner alone. Two figures, each the
median of --rounds: (1) per call of the workload's own call path (task creation excluded) minus a bare
await; (2) the workload driving one lane flat out (interval 0, in_flight 8) for --ops calls, time per
call, which adds the task per call and the scheduling loop; (3) for an HTTP target, what recording one request
Locust made costs the lab's event loop (its op event in the history).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.scenario.history import History  # noqa: E402
from lab.scenario.http_load import HttpCall, Request  # noqa: E402
from lab.scenario.http_target import HttpTarget  # noqa: E402
from lab.scenario.workload import Workload  # noqa: E402


class NoOpLane:
    name, covers, breakers, outcomes, errors = "noop", ("pg",), {}, (), None

    async def op(self, sequence: int) -> None:
        return None

    def state(self) -> str:
        return "NONE"


async def per_call(ops: int, clock: Callable[[], float]) -> tuple[float, float]:
    lane = NoOpLane()
    started = clock()
    for i in range(ops):
        await lane.op(i)
    bare = (clock() - started) / ops
    workload = Workload([lane], History(), 0.0, 8)
    started = clock()
    for i in range(ops):
        await workload._call(lane, i, 0.0)
    return bare, (clock() - started) / ops


def http_record(ops: int, clock: Callable[[], float]) -> float:
    """Per request Locust made, what the HTTP target's asyncio side adds: draining it and recording its op event
    (HttpTarget._record, the real code, fed a batch of ``ops`` finished requests)."""
    target = HttpTarget(HttpCall("http://127.0.0.1:9/"))
    target._history = History()
    batch = [Request(time.monotonic(), 0.001, 200, None if i % 10 else "HTTP 503") for i in range(ops)]
    target._load = types.SimpleNamespace(drain=lambda: batch)  # type: ignore[assignment]
    started = clock()
    target._record()
    return (clock() - started) / ops


async def flat_out(ops: int, clock: Callable[[], float]) -> float:
    history = History()
    workload = Workload([NoOpLane()], history, 0.0, 8)
    started = clock()
    workload.start()
    while len(history.events) < ops:
        await asyncio.sleep(0.01)
    await workload.stop()
    return (clock() - started) / len(history.events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this thread's CPU time (what the runner costs, whatever else the machine runs; "
                             "the default); wall: elapsed time")
    args = parser.parse_args()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {args.clock}")
    calls = [asyncio.run(per_call(args.ops, clock)) for _ in range(args.rounds)]
    loops = [asyncio.run(flat_out(args.ops, clock)) for _ in range(args.rounds)]
    http = statistics.median(http_record(args.ops, clock) for _ in range(args.rounds))
    bare = statistics.median(c[0] for c in calls)
    path = statistics.median(c[1] for c in calls)
    print(f"bare await of a no-op:            {bare * 1e6:7.2f} us/op")
    print(f"workload call path (op + event):  {path * 1e6:7.2f} us/op  (overhead {(path - bare) * 1e6:.2f} us)")
    print(f"workload flat out (task per op):  {statistics.median(loops) * 1e6:7.2f} us/op  "
          f"(= {1 / statistics.median(loops):,.0f} ops/s on one core)")
    print(f"HTTP target, per Locust request:  {http * 1e6:7.2f} us/op  (drain + op event; "
          f"{1 / http:,.0f} requests/s of recording on one core)")
    print(f"a scenario's default load is one call per lane every 25 ms: the overhead is "
          f"{statistics.median(loops) / 0.025:.3%} of that interval")


if __name__ == "__main__":
    main()
