"""What the runner adds to each operation of a target: the workload's task, its history event, the breaker-state
read, against awaiting the same operation bare.

    python bench/runner_bench.py [--ops 20000] [--rounds 5]

The operation is a no-op coroutine, so what is measured is the runner alone. Two figures, each the
median of --rounds: (1) per call of the workload's own call path (task creation excluded) minus a bare
await; (2) the workload driving one lane flat out (interval 0, in_flight 8) for --ops calls, wall time per
call, which adds the task per call and the scheduling loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.scenario.history import History  # noqa: E402
from lab.scenario.workload import Workload  # noqa: E402


class NoOpLane:
    name, covers, breakers, outcomes, errors = "noop", ("pg",), {}, (), None

    async def op(self, sequence: int) -> None:
        return None

    def state(self) -> str:
        return "NONE"


async def per_call(ops: int) -> tuple[float, float]:
    lane = NoOpLane()
    started = time.perf_counter()
    for i in range(ops):
        await lane.op(i)
    bare = (time.perf_counter() - started) / ops
    workload = Workload([lane], History(), 0.0, 8)
    started = time.perf_counter()
    for i in range(ops):
        await workload._call(lane, i, 0.0)
    return bare, (time.perf_counter() - started) / ops


async def flat_out(ops: int) -> float:
    history = History()
    workload = Workload([NoOpLane()], history, 0.0, 8)
    started = time.perf_counter()
    workload.start()
    while len(history.events) < ops:
        await asyncio.sleep(0.01)
    await workload.stop()
    return (time.perf_counter() - started) / len(history.events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls = [asyncio.run(per_call(args.ops)) for _ in range(args.rounds)]
    loops = [asyncio.run(flat_out(args.ops)) for _ in range(args.rounds)]
    bare = statistics.median(c[0] for c in calls)
    path = statistics.median(c[1] for c in calls)
    print(f"bare await of a no-op:            {bare * 1e6:7.2f} us/op")
    print(f"workload call path (op + event):  {path * 1e6:7.2f} us/op  (overhead {(path - bare) * 1e6:.2f} us)")
    print(f"workload flat out (task per op):  {statistics.median(loops) * 1e6:7.2f} us/op  "
          f"(= {1 / statistics.median(loops):,.0f} ops/s on one core)")
    print(f"a scenario's default load is one call per lane every 25 ms: the overhead is "
          f"{statistics.median(loops) / 0.025:.3%} of that interval")


if __name__ == "__main__":
    main()
