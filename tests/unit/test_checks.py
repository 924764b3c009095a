"""Checks are pure functions of a history: synthetic histories pin down each verdict."""

from __future__ import annotations

import pytest

from lab.scenario import checks
from lab.scenario.checks import FAIL, PASS, UNKNOWN, Verdict, run_check, worst
from lab.scenario.history import History

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def history_with(events: list[tuple]) -> History:
    clock = Clock()
    history = History(clock)
    for t, kind, status, details in events:
        clock.t = t
        history.add(kind, status, **details)
    clock.t = max((e[0] for e in events), default=0.0)
    return history


def phases(fault=(1.0, 4.0), heal=(4.0, 4.1)) -> list[tuple]:
    return [(fault[0], "phase", "ok", {"name": "fault", "edge": "start"}),
            (fault[1], "phase", "ok", {"name": "fault", "edge": "end"}),
            (heal[0], "phase", "ok", {"name": "heal", "edge": "start"}),
            (heal[1], "phase", "ok", {"name": "heal", "edge": "end"})]


def op(t: float, status: str = "ok", error: str | None = None, latency: float = 0.01) -> tuple:
    details = {"lane": "pg", "started": t - latency, "ended": t, "latency_s": latency}
    if error:
        details["error_class"] = error
    return (t, "op", status, details)


def move(t: float, source: str, to: str, reason: str = "") -> tuple:
    return (t, "breaker", "ok", {"component": "pg", "from": source, "to": to, "reason": reason})


def outcome(t: float, status: str = "ok", duration: float = 0.01) -> tuple:
    return (t, "outcome", status, {"component": "pg", "duration_s": duration})


def full_window(t0: float = 0.5) -> list[tuple]:
    return [outcome(t0 + i / 100) for i in range(10)]


def opens(events: list[tuple], slow_threshold_pct: float = 100.0) -> Verdict:
    return checks.breaker_opens("pg", 10, 5, 50, slow_threshold_pct, 0.2)(history_with(phases() + events))


def test_breaker_opening_at_the_outcome_its_window_reaches_the_threshold_passes():
    failures = [outcome(1.1 + i / 100, "fail") for i in range(4)]
    verdict = opens(full_window() + failures + [move(1.2, "CLOSED", "OPEN"), outcome(1.2, "fail")])
    assert verdict.result == PASS, verdict


def test_breaker_still_closed_at_exactly_the_threshold_fails():
    """`>` for `>=`: 5 failures of 10 is 50%, and 50% must open it."""
    failures = [outcome(1.1 + i / 100, "fail") for i in range(5)]
    verdict = opens(full_window() + failures + [move(1.2, "CLOSED", "OPEN"), outcome(1.2, "fail")])
    assert verdict.result == FAIL and "outcome 15 made the failure rate 50%" in verdict.evidence, verdict


def test_breaker_opening_below_the_threshold_fails():
    failures = [outcome(1.1 + i / 100, "fail") for i in range(3)]
    verdict = opens(full_window() + failures + [move(1.2, "CLOSED", "OPEN"), outcome(1.2, "fail")])
    assert verdict.result == FAIL and "below its thresholds" in verdict.evidence, verdict


def test_slow_calls_at_the_slow_threshold_must_open_it():
    slow = [outcome(1.1 + i / 100, "ok", duration=0.3) for i in range(6)]
    verdict = opens(full_window() + slow + [move(1.2, "CLOSED", "OPEN")], slow_threshold_pct=50)
    assert verdict.result == FAIL and "slow-call rate 50%" in verdict.evidence, verdict


def test_breaker_that_never_opens_fails():
    assert opens(full_window()).result == FAIL


def test_cancellations_are_judged_by_the_breakers_own_counts():
    ops = [op(1.0 + i / 10, "unknown", "Cancelled") for i in range(10)] + [op(2.5 + i / 10) for i in range(5)]
    ignored = checks.breaker_ignores_cancellations("pg")(history_with(phases() + ops + [outcome(3, "ok")] * 5))
    assert ignored.result == PASS, ignored
    counted = checks.breaker_ignores_cancellations("pg")(
        history_with(phases() + ops + [outcome(3, "ok")] * 5 + [outcome(3, "fail")] * 10))
    assert counted.result == FAIL and "15 outcomes (10 failures) for 5 completed calls" in counted.evidence, counted
    unguarded = checks.breaker_ignores_cancellations("pg")(history_with(phases() + ops))
    assert unguarded.result == FAIL and "nothing guards" in unguarded.evidence
    final = [(5.0, "phase", "ok", {"name": "final", "edge": "start"})] + [outcome(5.1, "ok")] * 100
    probed = checks.breaker_ignores_cancellations("pg")(history_with(phases() + ops + [outcome(3, "ok")] * 5 + final))
    assert probed.result == PASS, "the final probes' calls are not the workload's"


def test_a_breaker_moved_by_the_completed_calls_own_failures_still_ignores_cancellations():
    """Seen on a starved machine: the pool gave no connection within its bound, those calls failed, the
    breaker opened on them. Its counts held no cancellation: that is the property, and it holds."""
    ops = ([op(1.0 + i / 10, "unknown", "Cancelled") for i in range(10)]
           + [op(2.5 + i / 10, "fail", "PoolExhausted") for i in range(5)])
    history = history_with(phases() + ops + [outcome(3, "fail")] * 5 + [move(3.1, "CLOSED", "OPEN")])
    verdict = checks.breaker_ignores_cancellations("pg")(history)
    assert verdict.result == PASS and "{'PoolExhausted': 5}" in verdict.evidence, verdict


def test_a_few_cancellations_counted_fail_but_a_few_ignored_are_too_few_to_pass():
    """A breaker that counts cancellations can open after a handful and refuse the rest: the count is wrong
    however few were cancelled (measured: 9 cancellations under cancellations_counted, once)."""
    ops = [op(1.0 + i / 10, "unknown", "Cancelled") for i in range(5)] + [op(2.5 + i / 10) for i in range(5)]
    counted = checks.breaker_ignores_cancellations("pg")(
        history_with(phases() + ops + [outcome(3, "ok")] * 5 + [outcome(3, "fail")] * 5))
    assert counted.result == FAIL, counted
    few = checks.breaker_ignores_cancellations("pg")(history_with(phases() + ops + [outcome(3, "ok")] * 5))
    assert few.result == UNKNOWN and "too few" in few.evidence, few


@pytest.mark.parametrize("delay, expected", [(1.0, PASS), (1.1, PASS), (1.3, PASS), (0.8, FAIL)])
def test_half_open_no_sooner_than_the_wait_and_later_only_with_the_next_call(delay, expected):
    events = phases() + [move(1.2, "CLOSED", "OPEN"), move(1.2 + delay, "OPEN", "HALF_OPEN")]
    assert checks.half_open_after_wait("pg", 1.0, 0.15)(history_with(events)).result == expected


@pytest.mark.parametrize("delay, expected", [(0.5, PASS), (0.3, FAIL)])
def test_a_users_breaker_is_judged_by_the_wait_its_open_event_carries(delay, expected):
    """An observed user breaker configured for 0.5 s is right to go HALF_OPEN after 0.5 s, against a profile of
    1 s (found: an aiobreaker with a 0.5 s timeout failed 'HALF_OPEN after the wait'); sooner is still early."""
    opened = (1.2, "breaker", "ok", {"component": "pg", "from": "CLOSED", "to": "OPEN", "reason": "", "wait_s": 0.5})
    verdict = checks.half_open_after_wait("pg", 1.0, 0.15)(history_with(
        phases() + [opened, move(1.2 + delay, "OPEN", "HALF_OPEN")]))
    assert verdict.result == expected, verdict
    assert "0.5s" in verdict.evidence


def test_a_call_refused_after_the_wait_means_the_breaker_stayed_open():
    refused = op(2.6, "fail", "CallNotPermitted", latency=0.001)  # 1.4 s after opening, wait 1 s + 0.15 s
    late = phases() + [move(1.2, "CLOSED", "OPEN"), refused, move(2.7, "OPEN", "HALF_OPEN")]
    verdict = checks.half_open_after_wait("pg", 1.0, 0.15)(history_with(late))
    assert verdict.result == FAIL and "refused a call 1.399s after opening" in verdict.evidence, verdict
    within = phases() + [move(1.2, "CLOSED", "OPEN"), op(2.3, "fail", "CallNotPermitted", latency=0.001),
                         move(2.7, "OPEN", "HALF_OPEN")]
    assert checks.half_open_after_wait("pg", 1.0, 0.15)(history_with(within)).result == PASS
    stuck = phases() + [move(1.2, "CLOSED", "OPEN"), move(1.3, "OPEN", "HALF_OPEN"), move(1.31, "HALF_OPEN", "OPEN"),
                        op(3.0, "fail", "CallNotPermitted", latency=0.001)]
    verdict = checks.half_open_after_wait("pg", 0.1, 0.05)(history_with(stuck))
    assert verdict.result == FAIL and "never went HALF_OPEN" in verdict.evidence, verdict


def test_closes_after_heal_from_half_open_only():
    good = phases() + [move(1.2, "CLOSED", "OPEN"), move(4.5, "OPEN", "HALF_OPEN"), move(4.6, "HALF_OPEN", "CLOSED")]
    assert checks.closes_after_heal("pg", 2.0)(history_with(good)).result == PASS
    bad = phases() + [move(1.2, "CLOSED", "OPEN"), move(4.6, "OPEN", "CLOSED")]
    assert checks.closes_after_heal("pg", 2.0)(history_with(bad)).result == FAIL
    late = phases() + [move(1.2, "CLOSED", "OPEN"), move(7.0, "OPEN", "HALF_OPEN"), move(7.1, "HALF_OPEN", "CLOSED")]
    assert checks.closes_after_heal("pg", 2.0)(history_with(late)).result == FAIL


def test_a_breaker_closed_before_the_heal_by_trial_calls_counts_if_it_stays_closed():
    # flapping: the last up-window let the trial calls through (seen on compose, 2 runs of 10)
    early = phases() + [move(1.2, "CLOSED", "OPEN"), move(2.2, "OPEN", "HALF_OPEN"), move(2.3, "HALF_OPEN", "CLOSED")]
    verdict = checks.closes_after_heal("pg", 2.0)(history_with(early))
    assert verdict.result == PASS and "already at the heal" in verdict.evidence
    skipped = phases() + [move(1.2, "CLOSED", "OPEN"), move(2.3, "OPEN", "CLOSED")]
    assert checks.closes_after_heal("pg", 2.0)(history_with(skipped)).result == FAIL
    reopened = early + [move(4.2, "CLOSED", "OPEN")]
    assert checks.closes_after_heal("pg", 2.0)(history_with(reopened)).result == FAIL
    stuck_open = phases() + [move(1.2, "CLOSED", "OPEN")]
    assert checks.closes_after_heal("pg", 2.0)(history_with(stuck_open)).result == FAIL
    assert checks.closes_after_heal("pg", 2.0)(history_with(phases())).result == FAIL, "never opened, never closed"


def test_half_open_permits_counts_admitted_trials():
    events = phases() + [move(1.0, "CLOSED", "OPEN"), move(2.0, "OPEN", "HALF_OPEN"),
                         op(2.05), op(2.06), op(2.07, "fail", "CallNotPermitted"), move(2.1, "HALF_OPEN", "CLOSED")]
    assert checks.half_open_permits_respected("pg", 2)(history_with(events)).result == PASS
    events.insert(-1, op(2.08))
    assert checks.half_open_permits_respected("pg", 2)(history_with(events)).result == FAIL


def test_half_open_trials_are_the_calls_that_met_half_open_not_those_scheduled_in_it():
    """From a `lab run --all --repeat 10` (flapping_network, result 7): HALF_OPEN at 5.7916, CLOSED at
    5.9854 after its 2 trials; a third call scheduled at 5.9852 began after the close and met CLOSED."""
    def call(started: float, ended: float, state: str, error: str | None = None) -> tuple:
        details = {"lane": "pg", "started": started, "ended": ended, "latency_s": ended - started,
                   "breaker_state": state} | ({"error_class": error} if error else {})
        return (ended, "op", "fail" if error else "ok", details)

    base = phases() + [move(4.7876, "HALF_OPEN", "OPEN"), move(5.7916, "OPEN", "HALF_OPEN"),
                       call(5.7918, 5.9454, "HALF_OPEN"), call(5.8227, 5.9854, "HALF_OPEN"),
                       move(5.9854, "HALF_OPEN", "CLOSED")]
    scheduled_late = base + [call(5.9852, 6.1177, "CLOSED")]
    verdict = checks.half_open_permits_respected("pg", 2)(history_with(scheduled_late))
    assert verdict.result == PASS, verdict.evidence
    # a call scheduled while OPEN that began in HALF_OPEN is a trial of that period: three are too many
    early = base + [call(5.79, 5.95, "HALF_OPEN")]
    assert checks.half_open_permits_respected("pg", 2)(history_with(early)).result == FAIL
    # and a third call that met HALF_OPEN inside the period is one too many, as before
    third = base + [call(5.9, 5.96, "HALF_OPEN")]
    assert checks.half_open_permits_respected("pg", 2)(history_with(third)).result == FAIL
    # refused calls are not admitted
    refused = base + [call(5.9, 5.9001, "HALF_OPEN", "CallNotPermitted")]
    assert checks.half_open_permits_respected("pg", 2)(history_with(refused)).result == PASS


def test_calls_bounded_catches_hung_and_slow_calls():
    assert checks.calls_bounded("pg", 1.0)(history_with([op(1.0), op(2.0, latency=0.5)])).result == PASS
    assert checks.calls_bounded("pg", 1.0)(history_with([op(1.0, latency=3.0)])).result == FAIL
    assert checks.calls_bounded("pg", 1.0)(history_with([op(1.0, "unknown", "Hung")])).result == FAIL


def test_only_expected_errors():
    history = history_with([op(1.0, "fail", "DatabaseUnavailable"), op(1.1, "fail", "ConnectionResetError")])
    verdict = checks.only_expected_errors("pg", {"DatabaseUnavailable"})(history)
    assert verdict.result == FAIL and "ConnectionResetError" in verdict.evidence


def test_recovered_needs_the_last_calls_to_succeed():
    ok_tail = [op(float(i)) for i in range(12)]
    assert checks.recovered("pg", 10)(history_with(ok_tail)).result == PASS
    assert checks.recovered("pg", 10)(history_with(ok_tail + [op(13.0, "fail", "X")])).result == FAIL


def test_missing_probe_is_unknown_not_pass():
    assert checks.probe_passes("pg.pool")(history_with([])).result == UNKNOWN


def test_a_crashing_check_gives_unknown():
    def broken(history):
        raise ZeroDivisionError("bug in a check")

    verdict = run_check("broken", broken, history_with([]))
    assert verdict.result == UNKNOWN and "ZeroDivisionError" in verdict.evidence


def test_the_worst_verdict_wins():
    assert worst([Verdict("a", PASS, ""), Verdict("b", UNKNOWN, "")]) == UNKNOWN
    assert worst([Verdict("a", UNKNOWN, ""), Verdict("b", FAIL, ""), Verdict("c", PASS, "")]) == FAIL
    assert worst([]) == PASS


def injected(t: float = 1.05) -> tuple:
    return (t, "fault", "ok", {"name": "toxic:postgres", "edge": "inject"})


def delay(events: list[tuple]) -> Verdict:
    """Calls inside a fault of 0.8 s, accepted 0.64..1.2 s."""
    return checks.fault_delay_matches("pg", 0.8, 20, 50, "2 round trips of 400 ms")(
        history_with(phases() + [injected()] + events))


def test_fault_delay_is_judged_by_the_fastest_call_wholly_inside_the_fault():
    inside = [op(2.0, latency=0.81), op(3.0, latency=1.1)]
    assert delay(inside).result == PASS
    # a call that started before the injection, or ended after the heal began, does not count
    assert delay(inside + [op(1.3, latency=0.4), op(4.2, latency=0.1)]).result == PASS


@pytest.mark.parametrize("fastest", [0.41, 1.61])  # a latency halved; a toxic acting on requests too
def test_fault_delay_outside_its_tolerance_fails(fastest):
    verdict = delay([op(3.0, latency=fastest), op(3.5, latency=1.7)])
    assert verdict.result == FAIL and f"{fastest * 1000:.0f} ms" in verdict.evidence


def test_fault_delay_with_no_call_succeeding_inside_the_fault_fails_and_with_no_call_is_unknown():
    timeouts = [op(2.5, "fail", "QueryTimeout", latency=1.0), op(2.6, "fail", "CallNotPermitted", latency=0.0)]
    verdict = delay(timeouts)
    assert verdict.result == FAIL and "none of the 1" in verdict.evidence
    assert delay([op(2.1, "fail", "CallNotPermitted", latency=0.0)]).result == UNKNOWN


def failed_op(t: float, cause: str) -> tuple:
    event = op(t, "fail", "DatabaseUnavailable")
    event[3]["error"] = f"fetchval failed while running a command: {cause}: detail"
    return event


def test_reset_reached_client_reads_the_cause_the_lab_error_names():
    check = checks.reset_reached_client("pg")
    reset = history_with(phases() + [failed_op(2.0, "ConnectionResetError"), failed_op(2.1, "ConnectionError")])
    assert check(reset).result == PASS
    fin = history_with(phases() + [failed_op(2.0, "ConnectionDoesNotExistError"), failed_op(2.1, "ConnectionError")])
    verdict = check(fin)
    assert verdict.result == FAIL and "ConnectionDoesNotExistError" in verdict.evidence


def stack(resets_reach_clients: bool) -> tuple:
    return (0.0, "stack", "ok", {"backend": "b", "resets_reach_clients": resets_reach_clients})


def test_reset_reached_client_asks_for_a_close_only_where_the_path_turns_resets_into_closes():
    check = checks.reset_reached_client("pg")
    fin = [failed_op(2.0, "ConnectionDoesNotExistError"), failed_op(2.1, "ConnectionError")]
    assert check(history_with([stack(True)] + phases() + fin)).result == FAIL  # a RST could have come: it did not
    relayed = check(history_with([stack(False)] + phases() + fin))
    assert relayed.result == PASS and "reaches the client as a close" in relayed.evidence
    nothing = check(history_with([stack(False)] + phases() + [failed_op(2.0, "ConnectionError")]))
    assert nothing.result == FAIL  # a forwarder still cannot make a refused connect count
