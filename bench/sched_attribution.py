"""Whose wait for a CPU made tail_bench's slow round trips: the client's, the echo server's or the proxy's.

    perf sched record -o sched.data -- sleep 40 &    # system-wide, while tail_bench runs (root)
    python bench/tail_bench.py --rounds 3 --toxiproxy PATH --json run.json
    perf sched timehist -i sched.data > timehist.txt
    python bench/sched_attribution.py run.json timehist.txt [--slow-ms 1.0]

``perf sched timehist`` prints one line each time a task leaves a CPU: when, the task (``comm[tid/pid]``),
how long it had slept before its wake-up ("wait time"), how long it then waited for a CPU ("sch delay")
and how long it ran, in milliseconds. tail_bench's ``--json`` names the pid of every proxy, of the echo
server and of each batch's client. A client line whose sleep plus delay exceeds ``--slow-ms`` is one slow
round trip (the client sleeps from sending a ping until the echo comes back); inside that interval, the
run-queue delays of the echo server's and the proxy's threads are added up. Per batch it prints how many
round trips were slow, their total time, and how much of it each task spent runnable but not running.
The delays of a multi-threaded proxy are summed over its threads, so they can overlap one another and add
up to more than the interval: a large figure there means waits happened, not that they were on the path.
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
from collections import defaultdict
from pathlib import Path

TASK = re.compile(r"^.+\[(\d+)(?:/(\d+))?\]$")  # comm[tid] or comm[tid/pid]


def parse_timehist(path: Path) -> list[tuple[float, int, int, float, float, float]]:
    """(end of run in s, tid, pid, slept ms, waited for a CPU ms, ran ms) for every line that parses."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        match = TASK.match(fields[2])
        try:
            end_s, slept, delay, ran = float(fields[0]), float(fields[3]), float(fields[4]), float(fields[5])
        except ValueError:
            continue
        if match is None:
            continue
        tid = int(match.group(1))
        rows.append((end_s, tid, int(match.group(2) or tid), slept, delay, ran))
    if not rows:
        raise SystemExit(f"sched_attribution: no `perf sched timehist` lines in {path}")
    return rows


class Delays:
    """Run-queue delay intervals of one process's threads, to sum what falls inside a time window."""

    def __init__(self, intervals: list[tuple[float, float]]) -> None:
        self.intervals = sorted(intervals)
        self.starts = [start for start, _ in self.intervals]
        self.longest_s = max((end - start for start, end in self.intervals), default=0.0)

    def within(self, start_s: float, end_s: float) -> float:
        total = 0.0
        index = bisect.bisect_left(self.starts, start_s - self.longest_s)
        while index < len(self.intervals) and self.intervals[index][0] < end_s:
            begin, end = self.intervals[index]
            total += max(0.0, min(end, end_s) - max(begin, start_s))
            index += 1
        return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="tail_bench.py --json output")
    parser.add_argument("timehist", type=Path, help="perf sched timehist output")
    parser.add_argument("--slow-ms", type=float, default=1.0)
    args = parser.parse_args()
    run = json.loads(args.run.read_text())
    if "pids" not in run or not all("client_pid" in side for row in run["rounds"] for side in row.values()):
        raise SystemExit(f"sched_attribution: {args.run} has no pids (written by an older tail_bench.py?)")
    rows = parse_timehist(args.timehist)

    intervals: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for end_s, _tid, pid, _slept, delay, ran in rows:
        intervals[pid].append((end_s - (ran + delay) / 1000, end_s - ran / 1000))
    delays = {pid: Delays(found) for pid, found in intervals.items()}
    none = Delays([])
    echo = delays.get(run["pids"]["echo"], none)

    recorded = {tid for _end, tid, *_rest in rows}
    print(f"round trips over {args.slow_ms} ms: their count and total, and the run-queue delay inside them (ms)")
    for number, row in enumerate(run["rounds"], start=1):
        for side, measured in row.items():
            client_pid = measured["client_pid"]
            if client_pid not in recorded:
                print(f"round {number:>2} {side:>12}: its client (pid {client_pid}) is not in the recording")
                continue
            proxy = delays.get(run["pids"].get(side, -1), none)
            slow = 0
            spent = {"total": 0.0, "client": 0.0, "echo": 0.0, "proxy": 0.0}
            for end_s, tid, _pid, slept, delay, ran in rows:
                if tid != client_pid or slept + delay <= args.slow_ms:
                    continue
                slow += 1
                start_s, woke_s = end_s - (ran + delay + slept) / 1000, end_s - ran / 1000
                spent["total"] += woke_s - start_s
                spent["client"] += delay / 1000
                spent["echo"] += echo.within(start_s, woke_s)
                spent["proxy"] += proxy.within(start_s, woke_s)
            print(f"round {number:>2} {side:>12}: {slow:>5} slow, " + ", ".join(
                f"{name} {seconds * 1000:.1f}" for name, seconds in spent.items()
                if name != "proxy" or side in run["pids"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
