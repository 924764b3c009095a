"""The latency probe's baseline: the baseline phase's successful calls of its own lane, and the percentile both
sides take (pure logic: a recorded history, no stack)."""

from __future__ import annotations

import pytest

from lab.scenario.history import FAIL, OK, History
from lab.scenario.targets import baseline_latencies, percentile

pytestmark = pytest.mark.unit


def test_baseline_is_the_baseline_phases_successful_calls_of_the_lane():
    history = History(clock=lambda: 0.0)
    history.add("phase", name="baseline", edge="start", t=1.0)
    history.add("op", OK, t=0.5, lane="pg", latency_s=9.0)  # before the baseline
    history.add("op", OK, t=1.2, lane="pg", latency_s=0.003)
    history.add("op", OK, t=1.4, lane="pg", latency_s=0.001)
    history.add("op", FAIL, t=1.5, lane="pg", latency_s=5.0)  # failed
    history.add("op", OK, t=1.6, lane="kafka", latency_s=7.0)  # another lane
    history.add("phase", name="baseline", edge="end", t=2.0)
    history.add("op", OK, t=2.5, lane="pg", latency_s=8.0)  # after it
    assert baseline_latencies(history, "pg") == [0.001, 0.003]
    assert baseline_latencies(History(), "pg") == []  # no baseline phase: nothing to compare with


def test_percentile_is_the_nearest_rank_below():
    latencies = [float(i) for i in range(1, 11)]
    assert percentile(latencies, 0.9) == 9.0
    assert percentile(latencies, 0.5) == 5.0
    assert percentile([0.2], 0.9) == 0.2
