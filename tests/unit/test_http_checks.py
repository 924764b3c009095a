"""HTTP checks and the /metrics parser: pure functions, pinned down on synthetic histories and texts."""

from __future__ import annotations

import pytest

from lab.scenario.checks import FAIL, PASS, UNKNOWN
from lab.scenario.http_checks import (breaker_open_and_back, error_rate_recovers, fails_fast, phase_figures,
                                      throughput_recovers)
from lab.scenario.prometheus import BreakerMetric, parse_state

from .test_checks import history_with

pytestmark = pytest.mark.unit

PHASES = [(0.0, "baseline", "start"), (1.0, "baseline", "end"), (1.0, "fault", "start"), (3.0, "fault", "end"),
          (3.0, "heal", "start"), (3.1, "heal", "end"), (3.1, "recovery", "start"), (4.0, "recovery", "end"),
          (4.0, "final", "start"), (5.0, "final", "end")]


def phases() -> list[tuple]:
    return [(t, "phase", "ok", {"name": name, "edge": edge}) for t, name, edge in PHASES]


def request(t: float, ok: bool = True, latency_s: float = 0.01) -> tuple:
    details = {"lane": "http", "started": t - latency_s, "ended": t, "latency_s": latency_s}
    return (t, "op", "ok" if ok else "fail", details if ok else {**details, "error_class": "HTTP 503"})


def steady(start: float, end: float, per_s: int, ok: bool = True, latency_s: float = 0.01) -> list[tuple]:
    count = int((end - start) * per_s)
    return [request(start + (i + 0.5) / per_s, ok, latency_s) for i in range(count)]


def test_per_phase_figures():
    figures = phase_figures(history_with(phases() + steady(0, 1, 100) + steady(1, 3, 50, ok=False)))
    assert figures["baseline"]["rps"] == pytest.approx(100) and figures["baseline"]["error_rate"] == 0
    assert figures["fault"]["rps"] == pytest.approx(50) and figures["fault"]["error_rate"] == 1
    assert figures["baseline"]["p99_ms"] == pytest.approx(10)


def test_fails_fast_passes_quick_errors_and_fails_a_hung_request():
    quick = phases() + steady(1, 3, 50, ok=False, latency_s=0.005)
    assert fails_fast(1.0, 5.0)(history_with(quick)).result == PASS
    hung = quick + [request(2.9, ok=True, latency_s=1.8)]
    verdict = fails_fast(1.0, 5.0)(history_with(hung))
    assert verdict.result == FAIL and "took over 1s" in verdict.evidence
    assert fails_fast(1.0, 5.0)(history_with(phases())).result == FAIL  # nothing answered: every request hung
    # started in the fault, answered only after the heal: it hung through the fault all the same
    after = quick + [request(3.5, ok=True, latency_s=2.0)]
    verdict = fails_fast(1.0, 5.0)(history_with(after))
    assert verdict.result == FAIL and "1 of" in verdict.evidence, verdict
    # started and answered in the recovery: not the fault's
    assert fails_fast(1.0, 5.0)(history_with(quick + [request(4.4, ok=True, latency_s=1.2)])).result == PASS


def test_error_rate_and_throughput_judged_after_the_recovery_against_the_baseline():
    base = phases() + steady(0, 1, 100)
    assert error_rate_recovers()(history_with(base + steady(4, 5, 100))).result == PASS
    assert error_rate_recovers()(history_with(base + steady(4, 5, 90) + steady(4, 5, 10, ok=False))).result == FAIL
    assert throughput_recovers(0.9)(history_with(base + steady(4, 5, 95))).result == PASS
    assert throughput_recovers(0.9)(history_with(base + steady(4, 5, 80))).result == FAIL
    # a stall of the machine: nothing answered for 0.25 s (a quarter of this window's requests missing): not a
    # throughput the service failed to recover (counted as a plain mean it was 75% of the baseline)
    stalled = [r for r in steady(4, 5, 100) if not 4.25 <= r[0] < 4.5]
    assert throughput_recovers(0.9)(history_with(base + stalled)).result == PASS
    # a service that stays at 80% in most of the window still fails
    mostly_slow = steady(4, 4.25, 100) + steady(4.25, 5, 80)
    assert throughput_recovers(0.9)(history_with(base + mostly_slow)).result == FAIL
    failing_baseline = phases() + steady(0, 1, 100, ok=False) + steady(4, 5, 100)
    assert throughput_recovers(0.9)(history_with(failing_baseline)).result == UNKNOWN


def test_breaker_from_metrics_must_open_in_the_fault_and_end_closed():
    def move(t, to):
        return (t, "breaker", "ok", {"component": "pg", "to": to})

    check = breaker_open_and_back("pg")
    assert check(history_with(phases() + [move(1.5, "OPEN"), move(3.5, "CLOSED")])).result == PASS
    assert check(history_with(phases() + [move(1.5, "OPEN")])).result == FAIL
    assert check(history_with(phases() + steady(1, 3, 10, ok=False))).result == FAIL  # it bit, nothing opened
    untouched = check(history_with(phases() + steady(1, 3, 10)))  # nothing failed: the fault missed the service
    assert untouched.result == UNKNOWN and "did not reach the service" in untouched.evidence


def test_the_metrics_parser_reads_the_labelled_sample():
    text = ('# TYPE orders_db_breaker_state gauge\n'
            'orders_db_breaker_state{name="payments"} 0\n'
            'orders_db_breaker_state{name="orders-db",zone="a"} 1\n')
    spec = BreakerMetric("http://x/metrics", "orders_db_breaker_state", labels={"name": "orders-db"})
    assert parse_state(text, spec) == "OPEN"
    assert parse_state(text, BreakerMetric("http://x/metrics", "orders_db_breaker_state")) == "CLOSED"
    assert parse_state(text, BreakerMetric("http://x/metrics", "other")) is None
    assert parse_state('orders_db_breaker_state{name="orders-db"} 7\n', spec) is None  # unmapped value
