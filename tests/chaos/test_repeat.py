"""`lab run --repeat` on a real stack: every round recorded in the run history, one JUnit testcase."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from lab.scenario.store import RunStore

from .test_heal_matrix import SCENARIO_DIR

pytestmark = pytest.mark.chaos


def test_repeated_rounds_are_stored_and_reported_once(chaos_stack, tmp_path):
    store, junit = tmp_path / "history.sqlite", tmp_path / "out.xml"
    result = chaos_stack.run("run", "one_fault", "--repeat", "2", "--history", str(store), "--junit", str(junit),
                             extra_env={"LAB_SCENARIO_PATH": str(SCENARIO_DIR), "HEAL_FAULT": "toxic",
                                        "HEAL_FAULT_S": "1"}, timeout=180)
    assert "[round 2 of 2]" in result.stdout
    stored = list(RunStore(store).results("one_fault"))
    assert [r.verdict for r in stored] == ["pass", "pass"] and stored[0].run_id == stored[1].run_id
    assert stored[1].metrics["duration_s"] > 1.0 and "pg.baseline.p99_s" in stored[1].metrics
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == ["one_fault"]
    assert "runs: 2, passed: 2" in cases[0].find("system-out").text
    listed = chaos_stack.run("history", "one_fault", "--history", str(store))
    assert "one_fault" in listed.stdout and "100%" in listed.stdout
