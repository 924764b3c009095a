"""What a target declares decides what the checks may say: evidence not provided is UNKNOWN with its reason,
never a pass; a breaker declared absent is evidence (the checks fail). ``analyze`` is a pure function."""

from __future__ import annotations

import pytest

from lab.scenario import analyze, checks
from lab.scenario.checks import FAIL, PASS, UNKNOWN
from lab.scenario.history import History

from .test_checks import history_with, move, op, phases

pytestmark = pytest.mark.unit


def declared(breakers: dict, errors=None, covers=("pg",), outcomes=()) -> tuple:
    return (0.0, "target", "ok", {"name": "orders", "lanes": [{"name": "service", "covers": list(covers),
                                                               "errors": errors}],
                                  "breakers": breakers, "outcomes": list(outcomes)})


def service_op(t: float, status: str = "ok", error: str | None = None, latency: float = 0.01) -> tuple:
    t_, kind, status_, details = op(t, status, error, latency)
    return (t_, kind, status_, {**details, "lane": "service"})


CYCLE = [move(1.5, "CLOSED", "OPEN", "failure rate"), move(2.5, "OPEN", "HALF_OPEN"),
         move(4.5, "HALF_OPEN", "CLOSED")]
BREAKER_CHECKS = [checks.breaker_opens("pg", 10, 5, 50, 100, 5.0), checks.half_open_after_wait("pg", 1.0, 0.15),
                  checks.closes_after_heal("pg", 5.0), checks.opened_because("pg", "failure")]


@pytest.mark.parametrize("check", BREAKER_CHECKS)
def test_a_breaker_the_target_does_not_tell_about_is_unknown_with_the_reason(check):
    verdict = check(history_with(phases() + [declared({})] + CYCLE))  # transitions of some other breaker
    assert verdict.result == UNKNOWN
    assert "does not say how its pg breaker is observed" in verdict.evidence


@pytest.mark.parametrize("check", BREAKER_CHECKS[:3])
def test_a_breaker_declared_absent_fails_the_breaker_checks(check):
    assert check(history_with(phases() + [declared({"pg": "absent"})])).result == FAIL


def test_an_observed_breaker_without_outcomes_passes_on_its_opening_and_says_what_was_not_checked():
    verdict = BREAKER_CHECKS[0](history_with(phases() + [declared({"pg": "observed"})] + CYCLE))
    assert verdict.result == PASS
    assert "its threshold is the breaker's own" in verdict.evidence


def test_the_calls_of_a_lane_count_for_every_component_it_covers():
    events = phases() + [declared({}, covers=("pg", "kafka"))] + [service_op(5 + i / 10) for i in range(10)]
    for component in ("pg", "kafka"):
        assert checks.recovered(component)(history_with(events)).result == PASS


def test_a_component_no_lane_exercises_is_unknown_for_the_call_checks():
    events = phases() + [declared({}, covers=("pg",))] + [service_op(5 + i / 10) for i in range(10)]
    for check in (checks.recovered("kafka"), checks.calls_bounded("kafka", 1.0)):
        verdict = check(history_with(events))
        assert verdict.result == UNKNOWN and "makes no calls that exercise kafka" in verdict.evidence


def test_errors_a_target_does_not_declare_are_unknown_and_declared_ones_replace_the_scenarios():
    events = phases() + [service_op(2.0, FAIL, "OrdersUnavailable")]
    check = checks.only_expected_errors("pg", {"DatabaseUnavailable"})
    untold = check(history_with([declared({}, errors=None)] + events))
    assert untold.result == UNKNOWN and "does not declare which errors" in untold.evidence
    assert check(history_with([declared({}, errors=["OrdersUnavailable"])] + events)).result == PASS
    assert check(history_with([declared({}, errors="lab")] + events)).result == FAIL


def test_analyze_is_pure_and_adds_the_heal_check():
    history = history_with(phases() + [(5.0, "probe", "ok", {"name": "faults.healed", "evidence": "clean"})])
    before = list(history.events)
    verdicts = analyze(history, [("recovered", checks.recovered("pg"))])
    assert [v.check for v in verdicts] == ["recovered", "faults healed"]
    assert verdicts[1].result == PASS
    assert history.events == before
    assert analyze(history, [("recovered", checks.recovered("pg"))]) == verdicts


def test_analyze_of_a_run_that_errored_is_one_unknown_naming_the_error():
    history = History()
    history.add("error", UNKNOWN, error="StackError: steady state not reached")
    verdicts = analyze(history, [("recovered", checks.recovered("pg"))])
    assert [(v.check, v.result) for v in verdicts] == [("infrastructure", UNKNOWN)]
    assert "steady state not reached" in verdicts[0].evidence


def test_the_injected_delay_is_read_from_the_lab_clients_calls_only():
    """A user service's calls may make one round trip or five, or time out before the delay shows (found: a
    purgatory service with a 0.4 s timeout failed 'calls delayed by the configured latency' under 400 ms): the
    check about the proxy is UNKNOWN there, and still judged on the lab's own clients."""
    check = checks.fault_delay_matches("pg", 0.8, 20, 50, "2 round trips of 400 ms")
    fault = (1.05, "fault", "ok", {"name": "toxic:postgres", "edge": "inject"})
    theirs = [service_op(3.0, "fail", "Unavailable", latency=0.4)]
    verdict = check(history_with(phases() + [fault, declared({"pg": "observed"}, errors=["Unavailable"])] + theirs))
    assert verdict.result == UNKNOWN and "makes calls of its own on pg" in verdict.evidence, verdict
    ours = (0.0, "target", "ok", {"name": "lab clients", "lanes": [{"name": "pg", "covers": ["pg"], "errors": "lab"}],
                                  "breakers": {"pg": "observed"}, "outcomes": ["pg"]})
    assert check(history_with(phases() + [fault, ours, op(3.0, latency=0.81)])).result == PASS
    assert check(history_with(phases() + [fault, ours, op(3.0, latency=0.41)])).result == FAIL


def test_cancellations_are_unknown_where_the_breaker_is_seen_through_its_transitions_only():
    """A third-party breaker's adapter sees transitions, not the outcomes its window counts: 'breaker ignores
    cancellations' cannot be told there (it failed a resilient aiobreaker service as 'nothing guards them'). A
    breaker declared absent still fails it."""
    cancelled = [service_op(2.0 + i / 10, "unknown", "Cancelled") for i in range(12)]
    check = checks.breaker_ignores_cancellations("pg")
    observed = check(history_with(phases() + [declared({"pg": "observed"}, errors=["X"])] + cancelled))
    assert observed.result == UNKNOWN and "transitions only" in observed.evidence, observed
    absent = check(history_with(phases() + [declared({"pg": "absent"}, errors=["X"])] + cancelled))
    assert absent.result == FAIL and "nothing guards them" in absent.evidence, absent


def test_whether_a_reset_reached_the_client_is_read_from_the_lab_clients_only():
    """A service's own errors need not name their cause (asyncpg's ConnectionDoesNotExistError wrapped in its
    own class): UNKNOWN there; the lab's clients are judged as before."""
    check = checks.reset_reached_client("pg")
    wrapped = [service_op(2.0, "fail", "OrdersUnavailable")]
    verdict = check(history_with(phases() + [declared({"pg": "observed"}, errors=["OrdersUnavailable"])] + wrapped))
    assert verdict.result == UNKNOWN and "need not name their cause" in verdict.evidence, verdict
    assert check(history_with(phases() + [op(2.0, "fail", "DatabaseUnavailable")])).result == FAIL


def test_the_pool_checks_read_the_calls_on_the_component_and_its_replacement_from_the_lab_pool_only():
    from lab.scenario.pool_lane import acked_rate_held, member_replaced_within

    theirs = [declared({"kafka": "observed"}, errors=["X"], covers=("kafka",))]
    calls = [service_op(0.1 * i, latency=0.01) for i in range(1, 60)]  # 10/s in the baseline and the fault
    window = [(0.0, "phase", "ok", {"name": "baseline", "edge": "start"}),
              (1.0, "phase", "ok", {"name": "baseline", "edge": "end"})]
    assert acked_rate_held("kafka", 0.7)(history_with(phases() + window + theirs + calls)).result == PASS
    stalled = [c for c in calls if not 1.0 <= c[0] < 3.0]
    assert acked_rate_held("kafka", 0.7)(history_with(phases() + window + theirs + stalled)).result == FAIL
    replaced = member_replaced_within(1.5)(history_with(phases() + theirs + calls))
    assert replaced.result == UNKNOWN and "producer pool" in replaced.evidence, replaced
