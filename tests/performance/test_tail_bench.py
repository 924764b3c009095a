"""bench/tail_bench.py in a short smoke mode: every side measured, bulk included, against a real Toxiproxy too.

No number is asserted (a shared 2-core machine gives no stable timings). What is guarded: the bench runs to
the end with ``--bulk-mib`` and prints a bulk figure and a ratio for every side, and, where a real
``toxiproxy-server`` has been built (compose/toxiproxy/build.sh; LAB_TOXIPROXY_SERVER or .toxiproxy/ in
the repository), that Toxiproxy is started, given its proxies through its API and measured like lab.proxy:
its bulk transfer must complete although Toxiproxy closes both directions when one ends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.performance

ROOT = Path(__file__).resolve().parents[2]
BULK_AND_RATIO = re.compile(r"bulk [\d.]+ \([\d.]+\.\.[\d.]+\) Gbit/s +=  ?[\d.]+ \(")  # throughput, ratio


def _tail_bench(*argv: str) -> str:
    done = subprocess.run([sys.executable, "bench/tail_bench.py", "--rounds", "1", "--count", "500",
                           "--bulk-mib", "8", *argv], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, f"tail_bench exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _summary(out: str, side: str) -> str:
    lines = [line for line in out.splitlines() if line.strip().startswith(f"{side}  p50")]
    assert len(lines) == 1, out
    return lines[0]


def _toxiproxy_server() -> Path | None:
    where = Path(os.environ.get("LAB_TOXIPROXY_SERVER", ROOT / ".toxiproxy" / "toxiproxy-server"))
    return where if os.access(where, os.X_OK) else None


def test_tail_bench_reports_bulk_for_every_side():
    out = _tail_bench()
    assert " Gbit/s" in _summary(out, "direct"), out
    lab = _summary(out, "lab")
    assert BULK_AND_RATIO.search(lab), lab


@pytest.mark.skipif(_toxiproxy_server() is None,
                    reason="no toxiproxy-server built (compose/toxiproxy/build.sh SOURCE, or LAB_TOXIPROXY_SERVER)")
def test_tail_bench_measures_a_real_toxiproxy():
    out = _tail_bench("--toxiproxy", str(_toxiproxy_server()))
    toxiproxy = _summary(out, "toxiproxy")
    assert "p99 " in toxiproxy and BULK_AND_RATIO.search(toxiproxy), toxiproxy
    paired = [line for line in out.splitlines() if line.strip().startswith("lab / toxiproxy")]
    assert len(paired) == 1 and "p99 " in paired[0] and "bulk " in paired[0], out


def test_tail_bench_refuses_a_toxiproxy_that_is_not_executable(tmp_path):
    done = subprocess.run([sys.executable, "bench/tail_bench.py", "--toxiproxy", str(tmp_path / "none")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "is not an executable file" in done.stderr, done.stderr
