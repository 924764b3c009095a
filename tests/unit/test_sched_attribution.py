"""bench/sched_attribution.py: a slow round trip is charged with the run-queue delays that fell inside it.

Pure logic over a hand-written `perf sched timehist` excerpt and a tail_bench --json: no perf, no sockets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sched_attribution.py"
HEADER = """           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
"""


def _attribute(tmp_path: Path, timehist: str, run: dict) -> subprocess.CompletedProcess[str]:
    (tmp_path / "th.txt").write_text(HEADER + timehist)
    (tmp_path / "run.json").write_text(json.dumps(run))
    return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "run.json"), str(tmp_path / "th.txt")],
                          capture_output=True, text=True, timeout=30)


RUN = {"pids": {"lab": 300, "echo": 200},
       "rounds": [{"lab": {"client_pid": 100}, "direct": {"client_pid": 101}}]}


def test_delays_inside_a_slow_round_trip_are_charged_to_their_task(tmp_path):
    # Times are in seconds, durations in ms. The client (pid 100) sleeps from 10.000 s for 2.5 ms, waits
    # 0.5 ms for a CPU, runs 0.1 ms: one slow round trip of 3.0 ms.
    # Inside it: an echo thread (tid 201 of pid 200) waited 0.4 ms, the proxy (pid 300) 1.2 ms.
    # Outside it: another proxy delay (at 11 s) that must not be charged.
    timehist = (
        "   10.001500 [0000]  python[300]      0.100   1.200   0.300\n"
        "   10.002000 [0001]  ping[201/200]    0.500   0.400   0.100\n"
        "   10.003100 [0000]  ping[100]        2.500   0.500   0.100\n"
        "   11.000000 [0000]  python[300]      5.000   9.000   0.100\n"
        "   11.000200 [0001]  ping[100]        0.050   0.010   0.010\n"  # a fast round trip
    )
    done = _attribute(tmp_path, timehist, RUN)
    assert done.returncode == 0, done.stderr
    lab = next(line for line in done.stdout.splitlines() if " lab:" in line)
    assert lab.endswith("1 slow, total 3.0, client 0.5, echo 0.4, proxy 1.2"), done.stdout
    direct = next(line for line in done.stdout.splitlines() if " direct:" in line)
    assert "not in the recording" in direct


def test_a_run_without_pids_is_refused(tmp_path):
    done = _attribute(tmp_path, "   1.0 [0000]  ping[100]  1.0  1.0  1.0\n", {"rounds": [{"lab": {}}]})
    assert done.returncode != 0 and "has no pids" in done.stderr, done.stderr
