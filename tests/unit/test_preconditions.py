"""A precondition says the fault took effect: unmet, the verdict is UNKNOWN (never FAIL, never PASS), what each
check would have said stays in its evidence, and the preconditions are not checks of the matrix."""

from __future__ import annotations

import pytest

from lab.scenario import analyze, available, checks
from lab.scenario.checks import FAIL, PASS, UNKNOWN, worst
from lab.scenario.matrix import cells

from .test_checks import history_with, op, phases

pytestmark = pytest.mark.unit

HEALED = (9.0, "probe", "ok", {"name": "faults.healed", "evidence": "clean"})
BIT = [("pg: calls failed during the fault", checks.failures_during_fault("pg"))]
# the last calls fail: "recovered" FAILs on its own
CHECKS = [("pg: recovered", checks.recovered("pg"))]


def failing_tail() -> list[tuple]:
    return [op(6 + i / 10, FAIL, "DatabaseUnavailable") for i in range(10)]


def test_an_unmet_precondition_makes_every_check_unknown_and_keeps_what_it_said():
    history = history_with(phases() + failing_tail() + [HEALED])  # no call failed inside the fault (t 1..5)
    verdicts = analyze(history, CHECKS, BIT)
    by_name = {v.check: v for v in verdicts}
    assert by_name["precondition: pg: calls failed during the fault"].result == UNKNOWN
    assert by_name["precondition: pg: calls failed during the fault"].evidence.startswith("not met: ")
    assert by_name["pg: recovered"].result == UNKNOWN
    assert "did not take effect (pg: calls failed during the fault); the check said fail" in \
        by_name["pg: recovered"].evidence
    assert by_name["faults healed"].result == PASS  # about the lab, judged regardless
    assert worst(verdicts) == UNKNOWN


def test_a_met_precondition_passes_and_the_checks_are_judged_as_they_are():
    history = history_with(phases() + [op(2.0, FAIL, "DatabaseUnavailable")] + failing_tail() + [HEALED])
    verdicts = analyze(history, CHECKS, BIT)
    by_name = {v.check: v for v in verdicts}
    assert by_name["precondition: pg: calls failed during the fault"].result == PASS
    assert by_name["pg: recovered"].result == FAIL
    assert worst(verdicts) == FAIL


def test_preconditions_are_not_in_the_check_matrix():
    scenarios = available()
    named = {(s, c) for _, s, cs in cells() for c in cs}
    for name, scenario in scenarios.items():
        pre = {check for check, _ in scenario.preconditions(scenario.profile)}
        assert not pre & {check for check, _ in scenario.checks(scenario.profile)}, name
        assert not {(name, check) for check in pre} & named, name
    assert {check for check, _ in scenarios["postgres_oom"].preconditions(scenarios["postgres_oom"].profile)} == {
        "the memory limit bit: queries were killed", "pg: calls failed during the fault"}
    assert [c for c, _ in scenarios["pg_admin_shutdown"].preconditions(scenarios["pg_admin_shutdown"].profile)] == [
        "pg: the fault killed sessions"]
