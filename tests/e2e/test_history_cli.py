"""`lab history` as a user runs it, over stores holding a regression, a flaky scenario, or neither."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from lab.scenario.store import RunStore

from ..labenv import ROOT

pytestmark = pytest.mark.e2e


def history(store_path, *args):
    return subprocess.run([sys.executable, "-m", "lab", "history", "--history", str(store_path), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def fill(path, scenario, verdicts, detection):
    store = RunStore(path)
    run_id = store.start_run("local")
    for verdict, value in zip(verdicts, detection):
        store.record_values(run_id, scenario, verdict, 6.0, {"pg_detection_s": value, "duration_s": 6.0},
                            [("pg: breaker opens within its window", verdict, "")])


def test_a_slowed_client_is_flagged_by_history_check(tmp_path):
    path = tmp_path / "h.sqlite"
    fill(path, "network_partition", ["pass"] * 12, [0.15, 0.14, 0.16, 0.15, 0.15, 0.14, 0.16, 0.15, 0.15, 0.14, 0.15,
                                                     0.60])
    result = history(path, "--check")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ALARM  network_partition: pg_detection_s 0.600s beyond" in result.stdout
    assert history(path).returncode == 0, "without --check the report is informational"


def test_a_scenario_failing_at_random_half_the_time_is_flagged_flaky(tmp_path):
    path = tmp_path / "h.sqlite"
    rng = random.Random(11)
    verdicts = ["pass"] * 10 + ["pass" if rng.random() < 0.5 else "fail" for _ in range(10)]
    fill(path, "postgres_restart", verdicts, [0.2] * 20)
    result = history(path, "--json")
    assert result.returncode == 0
    assert "did not pass" in result.stdout
    text = history(path).stdout
    assert "FLAKY" in text and "postgres_restart" in text


def test_a_steady_history_passes_the_check_and_bad_input_is_named(tmp_path):
    path = tmp_path / "h.sqlite"
    fill(path, "blackhole", ["pass"] * 12, [1.1, 1.2, 1.1, 1.15, 1.1, 1.2, 1.1, 1.15, 1.1, 1.2, 1.1, 1.18])
    result = history(path, "--check")
    assert result.returncode == 0 and "ALARM" not in result.stdout, result.stdout
    missing = history(tmp_path / "none.sqlite")
    assert missing.returncode == 2 and "no run history at" in missing.stderr
    unknown = history(path, "nosuch")
    assert unknown.returncode == 2 and "no stored runs of scenario 'nosuch'" in unknown.stderr
