"""The benchmarks, run in a short smoke mode: they must run to the end and print their ratios.

No number is asserted (a 2-core machine shared with other work gives no stable
timings); what is guarded is that `make bench` has not rotted. The full runs are
`make bench`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.performance

ROOT = Path(__file__).resolve().parents[2]


def _bench(*argv: str, timeout_s: float = 180) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_proxy_bench_runs_and_prints_its_ratios():
    out = _bench("bench/proxy_bench.py", "--rounds", "1", "--bulk-mib", "8", "--round-trips", "500",
                 "--latency-round-trips", "10", "--idle", "50")
    for line in ("round trip 64 B", "bulk 8 MiB", "latency 100 ms", "idle connections"):
        assert line in out, out
    assert "x (rounds" in out, out


def test_breaker_bench_runs_and_prints_its_ratios():
    out = _bench("bench/breaker_bench.py", "--calls", "2000", "--rounds", "1")
    assert "lab.resilience" in out and "the time of bare await" in out, out


def test_runner_and_locust_benches_run_and_print_their_figures():
    out = _bench("bench/runner_bench.py", "--ops", "2000", "--rounds", "1")
    assert "clock: cpu" in out and "HTTP target, per Locust request" in out and "overhead" in out, out
    out = _bench("bench/locust_bench.py", "--users", "2", "--seconds", "1")
    assert "successful req/s, 0 errors" in out and "per request" in out, out
