"""Trends over stored results: flaky and regression flags (pure logic)."""

from __future__ import annotations

import random

import pytest

from lab.scenario import trends
from lab.scenario.store import StoredResult

pytestmark = pytest.mark.unit


def results(verdicts, metric=None):
    metric = metric or (lambda i: {})
    return [StoredResult(i, i, "s", v, float(i), metric(i)) for i, v in enumerate(verdicts)]


def test_a_scenario_failing_at_random_half_the_time_is_flaky():
    rng = random.Random(3)
    verdicts = ["pass" if rng.random() < 0.5 else "fail" for _ in range(20)]
    assert "did not pass" in trends.flaky_reason(verdicts)
    assert trends.trend("s", results(verdicts)).flaky


@pytest.mark.parametrize("verdicts", [["pass"] * 20, ["fail"] * 20, ["pass"] * 19 + ["fail"], ["pass"] * 9 + ["fail"]])
def test_steady_or_too_short_histories_are_not_flaky(verdicts):
    assert trends.flaky_reason(verdicts) == ""


def test_a_verdict_flipping_repeatedly_is_flaky_even_at_a_low_failure_rate():
    verdicts = ["pass"] * 2 + ["fail", "pass"] * 2 + ["pass"] * 14  # 2 failures of 20 (10%): the rate alone is fine
    assert trends.flaky_reason(verdicts).startswith("its verdict flipped 4 times")


def test_newly_flaky_only_when_the_newest_result_made_it_flaky():
    steady = ["pass"] * 10
    assert not trends.newly_flaky(results(steady))
    tipping = ["pass"] * 10 + ["fail", "fail"]  # 1 of 11 (9%) is steady; 2 of 12 (17%) is not
    assert trends.flaky_reason(tipping) and not trends.flaky_reason(tipping[:-1])
    assert trends.newly_flaky(results(tipping))


def test_a_slowed_client_is_a_regression_against_the_baseline():
    detection = [0.20, 0.21, 0.19, 0.22, 0.20, 0.21, 0.20, 0.40]  # the newest doubled
    history = results(["pass"] * 8, lambda i: {"pg_detection_s": detection[i]})
    baselines, found = trends.regressions(history)
    assert baselines["pg_detection_s"] == pytest.approx(0.20)
    assert [r.metric for r in found] == ["pg_detection_s"] and found[0].value == 0.40


def test_a_noisy_metric_needs_a_bigger_step_and_few_samples_judge_nothing():
    noisy = [0.1, 0.5, 0.2, 0.6, 0.1, 0.5, 0.3, 0.7]  # 0.7 is within three robust deviations of this baseline
    assert trends.regressions(results(["pass"] * 8, lambda i: {"x_s": noisy[i]}))[1] == []
    few = [0.2, 0.2, 0.2, 0.2, 5.0]
    assert trends.regressions(results(["pass"] * 5, lambda i: {"x_s": few[i]}))[1] == []


def test_only_passing_results_make_baselines_and_counts_are_not_times():
    values = [0.2] * 7 + [9.0, 0.2]
    verdicts = ["pass"] * 7 + ["fail", "pass"]  # the slow run failed: not in the baseline, not the newest passing
    history = results(verdicts, lambda i: {"recovery_s": values[i], "pg.fault.errors": 100.0 * i})
    baselines, found = trends.regressions(history)
    assert found == [] and "pg.fault.errors" not in baselines
