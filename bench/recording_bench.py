"""What recording adds to a real scenario run: the resource sampler, and the run store with the timeline.

    python bench/recording_bench.py [--pairs 4] [--interval-ms 500] [--scenarios NAME ...] [--json FILE]

Needs the stack (`python -m lab up`). Each pair runs a scenario twice, once with resource sampling off
(LAB_RESOURCE_SAMPLE_MS=0) and once on (every --interval-ms, default 500 as in `lab run`), in alternating order so drift hits
both alike; the "on" result is then recorded (metrics, checks and its zlib-compressed timeline) into a
fresh store, timed. Printed per scenario:

* the wall time of a run, off and on (medians), and their difference: what sampling costs a run's wall
  time, drowned in the scenario's own variation (its phases are sleeps; recovery waits vary);
* the sampler thread's CPU time as a share of the run's wall time (what it takes from the machine);
* the store's record time as a share of the run's wall time;
* recording's direct share: record time + sampler CPU, over the run's wall time. Target: under 1%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.config import Settings  # noqa: E402
from lab.scenario import load, run_scenario  # noqa: E402
from lab.scenario.store import RunStore  # noqa: E402


def one_run(scenario, settings: Settings, interval_ms: int):  # type: ignore[no-untyped-def]
    os.environ["LAB_RESOURCE_SAMPLE_MS"] = str(interval_ms)
    started = time.monotonic()
    result = asyncio.run(run_scenario(scenario, settings))
    return result, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--scenarios", nargs="+", default=["network_partition", "postgres_restart"])
    parser.add_argument("--interval-ms", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(filename=tempfile.mkstemp(prefix="recording-bench-", suffix=".log")[1], level=logging.INFO)
    settings = Settings.from_env()
    store = RunStore(Path(tempfile.mkdtemp(prefix="recording-bench-")) / "history.sqlite")
    run_id = store.start_run("bench")
    report = {}
    for scenario in load(args.scenarios):
        off, on, record, sampler_cpu, samples, verdicts = [], [], [], [], [], []
        for pair in range(args.pairs):
            for sampling in ((False, True) if pair % 2 == 0 else (True, False)):
                result, wall_s = one_run(scenario, settings, args.interval_ms if sampling else 0)
                verdicts.append(result.verdict)
                if not sampling:
                    off.append(wall_s)
                    continue
                on.append(wall_s)
                [sampler] = [e for e in result.history.of("sampler")]
                sampler_cpu.append(sampler.get("cpu_s") / wall_s)
                samples.append(sampler.get("samples"))
                started = time.perf_counter()
                store.record(run_id, result)
                record.append((time.perf_counter() - started) / wall_s)
        off_s, on_s = statistics.median(off), statistics.median(on)
        report[scenario.name] = {
            "wall_off_s": round(off_s, 3), "wall_on_s": round(on_s, 3),
            "wall_difference_pct": round(100 * (on_s - off_s) / off_s, 2),
            "wall_spread_off_pct": round(100 * (max(off) - min(off)) / off_s, 2),
            "sampler_cpu_pct": round(100 * statistics.median(sampler_cpu), 3),
            "samples_per_run": statistics.median(samples),
            "record_pct": round(100 * statistics.median(record), 3),
            "direct_pct": round(100 * (statistics.median(sampler_cpu) + statistics.median(record)), 3),
            "verdicts": verdicts,
        }
        print(f"{scenario.name} (sampling every {args.interval_ms} ms): {json.dumps(report[scenario.name])}",
              flush=True)
    print(f"store: {store.path} ({store.path.stat().st_size} bytes for {len(args.scenarios) * args.pairs} results)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
