"""What recording a scenario in the run history costs, against what running one takes.

    python bench/store_bench.py [--results 50] [--ops 800]

Records --results synthetic results, each with a history of --ops calls over the
four phases (a scenario makes about 400-800 here), into a fresh store, interleaving
with an equal number of computations of the same metrics alone (so the SQLite part
shows apart); prints the median per record and its share of a 6 s scenario (the
shortest scenarios take 5-7 s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.scenario.checks import Verdict  # noqa: E402
from lab.scenario.history import FAIL, OK, History  # noqa: E402
from lab.scenario.store import RunStore, phase_metrics  # noqa: E402


def synthetic(ops: int, rng: random.Random) -> types.SimpleNamespace:
    history = History(clock=lambda: 0.0)  # every event carries its own time
    for name, start, end in (("baseline", 0.0, 1.0), ("fault", 1.0, 4.0), ("heal", 4.0, 4.1), ("recovery", 4.1, 5.0)):
        history.add("phase", t=start, name=name, edge="start")
        history.add("phase", t=end, name=name, edge="end")
    for index in range(ops):
        t = 5.0 * index / ops
        history.add("op", OK if rng.random() < 0.7 else FAIL, t=t, lane=rng.choice(["pg", "kafka"]), started=t,
                    ended=t, latency_s=rng.random() / 100)
    return types.SimpleNamespace(scenario="bench", verdict="pass", duration_s=6.0, history=history,
                                 measurements={"recovery_s": 0.3, "pg_detection_s": 0.2}, negative_control=False,
                                 error=None, verdicts=[Verdict(f"check {i}", "pass", "evidence " * 10)
                                                      for i in range(12)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=50)
    parser.add_argument("--ops", type=int, default=800)
    args = parser.parse_args()
    rng = random.Random(5)
    results = [synthetic(args.ops, rng) for _ in range(args.results)]
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "history.sqlite")
        run_id = store.start_run("bench")
        store.record(run_id, results[0])  # warm-up: creates the schema
        recording, metrics_only = [], []
        for result in results:
            started = time.perf_counter()
            phase_metrics(result.history)
            metrics_only.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.record(run_id, result)
            recording.append(time.perf_counter() - started)
    median = statistics.median(recording)
    print(f"record: median {median * 1e3:.2f} ms (min {min(recording) * 1e3:.2f}, max {max(recording) * 1e3:.2f}) "
          f"per result of {args.ops} calls; metrics alone {statistics.median(metrics_only) * 1e3:.2f} ms")
    print(f"= {median / 6.0:.4%} of a 6 s scenario (target < 1%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
