"""What recording adds to a real scenario run: the resource sampler, the run store, and the JSON journal.

    python bench/recording_bench.py [--rounds 8] [--warmup 1] [--interval-ms 500] [--scenarios NAME ...]
                                    [--json FILE]

Needs the stack (`python -m lab up`). One process drives everything. Each round runs each scenario twice,
back to back, in an order that alternates from round to round (so drift and the machine's load hit both
alike):

* **off**: resource sampling off (LAB_RESOURCE_SAMPLE_MS=0) and nothing stored: the run alone;
* **on**: sampling every --interval-ms (default 500, as `lab run`), then the result recorded in a run
  store (metrics, checks and its zlib-compressed timeline) by `lab run`'s BackgroundRecorder, waited for
  (`lab run` lets the write overlap the next scenario; here it counts whole, so none spills into the next
  run and "off" stays clean).

A run's wall time is from the start of the scenario to the end of its recording ("on") or of the run
("off"). Printed per scenario, over the measured rounds (the --warmup rounds are run and dropped):

* ``wall``: the median of the per-round ratios on/off - 1, with their spread (min, max): what recording
  adds to a run's wall time, measured end to end. The scenarios' phases are timed sleeps and recovery
  waits vary from run to run, so this figure carries the runs' own noise (a few %);
* ``direct``: what recording takes that can be counted exactly, over the "off" run's wall time: the
  CPU time of the sampler thread, of the two phase-end samples (taken in the run's own thread) and of
  the store's writer thread (median per round, spread). The sampler's CPU is counted whole, though it runs beside the
  run (its thread waits in the kernel for most of a sample, and the run's phases are sleeps): an upper
  bound of what it takes from the run;
* ``journal``: writing this result's JSON journal (`lab run --json`, once per run for all results): not
  part of "on" (a run writes it only when asked), shown beside it.

Target (issue 14): recording adds under 1% to a run's wall time.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.config import Settings  # noqa: E402
from lab.scenario import LabClients, load, run  # noqa: E402
from lab.scenario.report import write_journal  # noqa: E402
from lab.scenario.store import BackgroundRecorder, RunStore  # noqa: E402


def one_run(scenario: Any, settings: Settings, interval_ms: int, store: RunStore | None,
            run_id: int) -> tuple[Any, float, float]:
    """(result, wall time in s including the recording, the store writer's CPU time in s).

    The result goes through `lab run`'s BackgroundRecorder, but is waited for here: in `lab run` the write
    overlaps the next scenario, here its whole wall time counts (so no write spills into the next run)."""
    os.environ["LAB_RESOURCE_SAMPLE_MS"] = str(interval_ms)
    started = time.perf_counter()
    result = asyncio.run(run(scenario, LabClients(), settings))
    record_cpu_s = 0.0
    if store is not None:
        recorder = BackgroundRecorder(store, run_id)
        recorder.submit(result)
        recorder.close()
        record_cpu_s = recorder.cpu_s
    return result, time.perf_counter() - started, record_cpu_s


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--scenarios", nargs="+", default=["network_partition", "postgres_restart"])
    parser.add_argument("--interval-ms", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.rounds < 1 or args.warmup < 0 or args.interval_ms < 1:
        parser.error("--rounds and --interval-ms must be at least 1, --warmup at least 0")
    logging.basicConfig(filename=tempfile.mkstemp(prefix="recording-bench-", suffix=".log")[1], level=logging.INFO)
    settings = Settings.from_env()
    scratch = Path(tempfile.mkdtemp(prefix="recording-bench-"))
    store = RunStore(scratch / "history.sqlite")
    run_id = store.start_run("bench")
    scenarios = load(args.scenarios)
    rows: dict[str, dict[str, list[float]]] = {s.name: {} for s in scenarios}
    verdicts: dict[str, list[str]] = {s.name: [] for s in scenarios}
    for round_index in range(args.warmup + args.rounds):
        for scenario in scenarios:
            walls: dict[bool, float] = {}
            for recording in ((False, True) if round_index % 2 == 0 else (True, False)):
                result, wall_s, record_s = one_run(scenario, settings, args.interval_ms if recording else 0,
                                                   store if recording else None, run_id)
                walls[recording] = wall_s
                verdicts[scenario.name].append(result.verdict)
                if recording:
                    [sampler] = result.history.of("sampler")
                    on = (sampler, record_s, result)
            if round_index < args.warmup:
                continue
            sampler, record_s, result = on
            started = time.perf_counter()
            write_journal(scratch / "journal.json", [result], "local")
            journal_s = time.perf_counter() - started
            off_s = walls[False]
            row = rows[scenario.name]
            for name, value in (
                    ("wall_pct", 100 * (walls[True] / off_s - 1)),
                    ("direct_pct", 100 * (sampler.get("cpu_s") + sampler.get("phase_end_cpu_s") + record_s) / off_s),
                    ("sampler_cpu_pct", 100 * sampler.get("cpu_s") / off_s),
                    ("phase_end_pct", 100 * sampler.get("phase_end_cpu_s") / off_s),
                    ("record_pct", 100 * record_s / off_s),
                    ("journal_pct", 100 * journal_s / off_s),
                    ("off_s", off_s), ("on_s", walls[True]),
                    ("samples", sampler.get("samples")),
                    ("sample_ms", 1000 * (sampler.get("cpu_s") + sampler.get("phase_end_cpu_s"))
                     / max(1, sampler.get("samples")))):
                row.setdefault(name, []).append(value)
            print(f"round {round_index - args.warmup + 1} {scenario.name}: off {off_s:.3f}s on {walls[True]:.3f}s "
                  f"wall {row['wall_pct'][-1]:+.2f}% direct {row['direct_pct'][-1]:.3f}% "
                  f"(sampler {row['sampler_cpu_pct'][-1]:.3f}%, phase ends {row['phase_end_pct'][-1]:.3f}%, "
                  f"record {row['record_pct'][-1]:.3f}%), journal {row['journal_pct'][-1]:.3f}%", flush=True)
    report = {name: {key: spread(values) for key, values in row.items()} | {"verdicts": verdicts[name]}
              for name, row in rows.items()}
    every = {key: spread([v for row in rows.values() for v in row[key]])
             for key in ("wall_pct", "direct_pct", "journal_pct")}
    report["all"] = every  # type: ignore[assignment]
    for name, row in report.items():
        print(f"{name}: {json.dumps({k: v for k, v in row.items() if k != 'verdicts'})}")
    print(f"recording adds to a run's wall time (median of per-round ratios, {args.rounds} rounds x "
          f"{len(scenarios)} scenarios): measured {every['wall_pct']['median']:+.2f}% "
          f"[{every['wall_pct']['min']:+.2f}, {every['wall_pct']['max']:+.2f}]; direct cost "
          f"{every['direct_pct']['median']:.3f}% [{every['direct_pct']['min']:.3f}, {every['direct_pct']['max']:.3f}] "
          f"(target < 1%); the journal, when asked for, {every['journal_pct']['median']:.3f}% more")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
