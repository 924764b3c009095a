"""Checks: pure functions of the history. Each returns a Verdict; a crashing check gives UNKNOWN.

Each check is built from the scenario's configuration, so its bounds are derived
from what the client was told to do (window sizes, waits, timeouts).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Iterable

from .evidence import (calls_not_the_labs, covering_lanes, expected_errors, lacks_breaker, lacks_calls,
                       observed_without_outcomes, reports_outcomes)
from .history import FAIL, OK, UNKNOWN, Event, History

PASS = "pass"
ORDER = {PASS: 0, UNKNOWN: 1, FAIL: 2}


@dataclasses.dataclass(frozen=True)
class Verdict:
    check: str
    result: str  # pass | fail | unknown
    evidence: str


Check = Callable[[History], Verdict]


def worst(verdicts: Iterable[Verdict]) -> str:
    return max((v.result for v in verdicts), key=ORDER.__getitem__, default=PASS)


def run_check(name: str, check: Check, history: History) -> Verdict:
    try:
        verdict = check(history)
    except Exception as err:  # a check that crashes knows nothing
        return Verdict(name, UNKNOWN, f"check crashed: {type(err).__name__}: {err}")
    return dataclasses.replace(verdict, check=name)


def _with_breaker(component: str, check: Check) -> Check:
    """``check`` judges ``component``'s breaker: UNKNOWN, with the reason, where the target does not say how
    that breaker is observed."""
    def guarded(history: History) -> Verdict:
        reason = lacks_breaker(history, component) or lacks_calls(history, component)
        return Verdict("", UNKNOWN, reason) if reason else check(history)
    return guarded


def _with_calls(component: str, check: Check) -> Check:
    """``check`` judges the calls on ``component``: UNKNOWN, with the reason, where the target makes none."""
    def guarded(history: History) -> Verdict:
        reason = lacks_calls(history, component)
        return Verdict("", UNKNOWN, reason) if reason else check(history)
    return guarded


def _window(history: History, phase: str) -> tuple[float, float]:
    window = history.phase(phase)
    if window is None:
        raise LookupError(f"no {phase!r} phase in the history")
    return window


def _ops(history: History, component: str) -> list[Event]:
    """The calls of every lane that exercises ``component`` (a lane the target did not declare covers the
    component it is named after)."""
    lanes = covering_lanes(history, component)
    return [e for e in history.of("op") if e.get("lane") in lanes]


def _transitions(history: History, component: str) -> list[Event]:
    return [e for e in history.of("breaker") if e.get("component") == component]


def breaker_opens(component: str, window_size: int, minimum_calls: int, threshold_pct: float,
                  slow_threshold_pct: float, slow_call_s: float) -> Check:
    """The breaker OPENs during the fault at the very outcome its window first reaches a threshold.

    The breaker's own recorded outcomes (``outcome`` events, in order) are replayed through a count window
    of the configured size: opening later than that (a rate that must exceed its threshold rather than reach
    it, slow calls not counted) or earlier (on a rate below it) both fail. With a full window the failure
    count moves one call at a time, so a fault that fails every call passes through exactly the threshold:
    50% and 100% are told apart.
    """
    def check(history: History) -> Verdict:
        start, end = _window(history, "fault")
        events = [e for e in history.events if e.get("component") == component and e.kind in ("outcome", "breaker")]
        opened_at = next((i for i, e in enumerate(events) if e.kind == "breaker" and e.get("to") == "OPEN"), None)
        if opened_at is None or not start <= events[opened_at].t <= end + 0.5:
            when = "never" if opened_at is None else f"at {events[opened_at].t - start:+.2f}s from the fault start"
            return Verdict("", FAIL, f"{component} breaker did not open during the fault (first OPEN: {when})")
        opened = events[opened_at]
        if not reports_outcomes(history, component):
            return Verdict("", PASS, f"{component} breaker OPEN {opened.t - start:.2f}s into the fault "
                                     f"({opened.get('reason')}); its threshold is the breaker's own: its adapter "
                                     f"reports transitions, not the outcomes the window counts")
        window: collections.deque[tuple[bool, bool]] = collections.deque(maxlen=window_size)

        def rates() -> tuple[float, float]:
            return (100.0 * sum(f for f, _ in window) / len(window), 100.0 * sum(s for _, s in window) / len(window))

        def reached() -> bool:
            failure, slow = rates()
            return len(window) >= minimum_calls and (failure >= threshold_pct or slow >= slow_threshold_pct)

        outcomes = [e for e in events[:opened_at] if e.kind == "outcome"]
        for index, event in enumerate(outcomes):
            window.append((event.status == FAIL, event.get("duration_s", 0.0) >= slow_call_s))
            if reached():
                failure, slow = rates()
                return Verdict("", FAIL, f"{component} breaker stayed CLOSED after its window reached a threshold: "
                                         f"outcome {index + 1} made the failure rate {failure:.0f}% and the slow-call "
                                         f"rate {slow:.0f}% of the last {len(window)} (thresholds "
                                         f"{threshold_pct:g}% / {slow_threshold_pct:g}%)")
        trigger = next((e for e in events[opened_at + 1:] if e.kind == "outcome"), None)
        if trigger is not None:
            window.append((trigger.status == FAIL, trigger.get("duration_s", 0.0) >= slow_call_s))
            if not reached():
                failure, slow = rates()
                return Verdict("", FAIL, f"{component} breaker opened on a window below its thresholds: failure rate "
                                         f"{failure:.0f}%, slow-call rate {slow:.0f}% of the last {len(window)}")
        failed = sum(1 for e in outcomes if e.status == FAIL and e.t >= start)
        return Verdict("", PASS, f"{component} breaker OPEN {opened.t - start:.2f}s into the fault, at the outcome its "
                                 f"window of {window_size} reached a threshold ({failed} failures recorded in the "
                                 f"fault before it): {opened.get('reason')}")
    return _with_breaker(component, check)


def half_open_after_wait(component: str, wait_s: float, tolerance_s: float) -> Check:
    """Every OPEN ends in HALF_OPEN: never before its wait (less ``tolerance_s``), and no call is refused once
    the wait is over (plus ``tolerance_s``). The wait is ``wait_s`` (the lab profile's), or the one an OPEN
    event carries (``wait_s``: a user's breaker, observed, is judged by its own configured wait).

    The breaker moves to HALF_OPEN when asked after its wait, so on a busy machine the move comes with the
    next call, later than the wait; a refusal after the wait is the evidence of a breaker that stayed OPEN.
    """
    def check(history: History) -> Verdict:
        transitions = _transitions(history, component)
        refused = [e.get("started", e.t) for e in _ops(history, component)
                   if e.get("error_class") == "CallNotPermitted"]
        spans: list[tuple[float, float | None, float]] = []  # opened, HALF_OPEN at (None: never), its wait
        opened: tuple[float, float] | None = None
        for event in transitions:
            if event.get("to") == "OPEN":
                opened = (event.t, float(event.get("wait_s", wait_s)))
            elif opened is not None:
                spans.append((opened[0], event.t if event.get("to") == "HALF_OPEN" else None, opened[1]))
                opened = None
        if opened is not None:
            spans.append((opened[0], None, opened[1]))
        waits = [end - start for start, end, _ in spans if end is not None]
        if not waits:
            return Verdict("", FAIL, f"{component} breaker never went OPEN -> HALF_OPEN")
        early = [(end - start, wait) for start, end, wait in spans
                 if end is not None and end - start < wait - tolerance_s]
        if early:
            return Verdict("", FAIL, f"{component} HALF_OPEN after {', '.join(f'{d:.3f}s' for d, _ in early)}; "
                                     f"expected no sooner than {early[0][1]:g}s - {tolerance_s:g}s")
        for start, end, wait in spans:
            due = start + wait + tolerance_s
            late = [t for t in refused if due <= t < (end if end is not None else float("inf"))]
            if late:
                left = "then HALF_OPEN" if end is not None else "and never went HALF_OPEN"
                return Verdict("", FAIL, f"{component} refused a call {late[0] - start:.3f}s after opening (wait "
                                         f"{wait:g}s + {tolerance_s:g}s), {left}"
                                         + (f" at {end - start:.3f}s" if end is not None else ""))
        configured = sorted({wait for _, _, wait in spans})
        return Verdict("", PASS, f"{len(waits)} OPEN -> HALF_OPEN after {min(waits):.3f}..{max(waits):.3f}s, no "
                                 f"call refused past the wait ({'/'.join(f'{w:g}' for w in configured)}s "
                                 f"+/- {tolerance_s:g}s)")
    return _with_breaker(component, check)


def closes_after_heal(component: str, within_s: float) -> Check:
    """After the heal the breaker is CLOSED, reached from HALF_OPEN (by trial calls), at most ``within_s`` after
    the heal, and it ends CLOSED.

    An intermittent fault (flapping) may let the trial calls of its last up-window through: the breaker then
    closes before the heal and stays closed, which is as good, provided that closing also came from HALF_OPEN.
    """
    def check(history: History) -> Verdict:
        heal_start, _ = _window(history, "heal")
        transitions = _transitions(history, component)
        after = [e for e in transitions if e.t >= heal_start]
        closed = [e for e in after if e.get("to") == "CLOSED"]
        final = transitions[-1].get("to") if transitions else "CLOSED"
        if closed:
            first = closed[0]
            when = f"{first.t - heal_start:.2f}s after the heal"
        elif transitions and not after and final == "CLOSED":
            first = transitions[-1]
            when = f"already at the heal ({heal_start - first.t:.2f}s before it) and stayed CLOSED"
        else:
            return Verdict("", FAIL, f"{component} breaker did not close after the heal")
        if first.get("from") != "HALF_OPEN":
            return Verdict("", FAIL, f"{component} breaker closed from {first.get('from')}, not HALF_OPEN")
        if first.t - heal_start > within_s:
            return Verdict("", FAIL, f"{component} closed {first.t - heal_start:.2f}s after the heal (> {within_s:g}s)")
        if final != "CLOSED":
            return Verdict("", FAIL, f"{component} breaker ended {final}")
        return Verdict("", PASS, f"{component} CLOSED {when} ({first.get('reason')})")
    return _with_breaker(component, check)


def half_open_permits_respected(component: str, permits: int) -> Check:
    """No HALF_OPEN period admits more trial calls than its permits.

    A call belongs to the period whose state it met when it asked the breaker (its ``breaker_state``, read
    as the call begins), not to the one its ``started`` falls in: ``started`` is when the workload
    scheduled it, and on a busy machine the call may begin only after the period ended (found in `lab
    run --all --repeat 10`: a call scheduled 0.2 ms before HALF_OPEN -> CLOSED ran in CLOSED and was
    counted as a third trial). So a period holds the calls that met HALF_OPEN and were scheduled after
    the breaker last opened, before the period ended; a call with no recorded state is placed by
    ``started``."""
    def check(history: History) -> Verdict:
        transitions = _transitions(history, component)
        periods = []
        for index, event in enumerate(transitions):
            if event.get("to") == "HALF_OPEN":
                end = transitions[index + 1].t if index + 1 < len(transitions) else history.now()
                opened = transitions[index - 1].t if index > 0 else event.t
                periods.append((opened, event.t, end))
        if not periods:
            return Verdict("", FAIL, f"{component} breaker was never HALF_OPEN")
        worst_count = 0
        for opened, start, end in periods:
            admitted = [e for e in _ops(history, component) if e.get("error_class") != "CallNotPermitted"
                        and (opened <= e.get("started", e.t) < end and e.get("breaker_state") == "HALF_OPEN"
                             if e.get("breaker_state") is not None else start <= e.get("started", e.t) < end)]
            worst_count = max(worst_count, len(admitted))
        if worst_count > permits:
            return Verdict("", FAIL, f"a HALF_OPEN period admitted {worst_count} calls (> {permits} permits)")
        return Verdict("", PASS, f"{len(periods)} HALF_OPEN periods, at most {worst_count} trial calls "
                                 f"(permits {permits})")
    return _with_breaker(component, check)


def calls_bounded(component: str, bound_s: float) -> Check:
    """Every call returned (or failed) within ``bound_s``: by its own timeout, not TCP's."""
    def check(history: History) -> Verdict:
        ops = _ops(history, component)
        if not ops:
            return Verdict("", FAIL, f"no {component} calls were made")
        hung = [e for e in ops if e.status == UNKNOWN and e.get("error_class") == "Hung"]
        slowest = max(e.get("latency_s", 0.0) for e in ops)
        if hung or slowest > bound_s:
            return Verdict("", FAIL, f"{len(hung)} {component} calls never returned; slowest {slowest:.2f}s "
                                     f"(bound {bound_s:g}s)")
        return Verdict("", PASS, f"{len(ops)} {component} calls, slowest {slowest:.2f}s (bound {bound_s:g}s)")
    return _with_calls(component, check)


def only_expected_errors(component: str, expected: set[str]) -> Check:
    def check(history: History) -> Verdict:
        allowed, reason = expected_errors(history, component, expected)
        if allowed is None:
            return Verdict("", UNKNOWN, reason)
        seen: dict[str, int] = {}
        for event in _ops(history, component):
            if event.status != OK:
                name = event.get("error_class", "?")
                seen[name] = seen.get(name, 0) + 1
        unexpected = {k: v for k, v in seen.items() if k not in allowed}
        if unexpected:
            return Verdict("", FAIL, f"unexpected {component} errors: {unexpected} (expected only {sorted(allowed)})")
        return Verdict("", PASS, f"{component} errors: {seen or 'none'}")
    return _with_calls(component, check)


def recovered(component: str, last_n: int = 10) -> Check:
    """The last calls of the run succeed."""
    def check(history: History) -> Verdict:
        tail = _ops(history, component)[-last_n:]
        if len(tail) < last_n:
            return Verdict("", FAIL, f"only {len(tail)} {component} calls at the end of the run")
        failed = [e for e in tail if e.status != OK]
        if failed:
            return Verdict("", FAIL, f"{len(failed)} of the last {last_n} {component} calls failed "
                                     f"({failed[-1].get('error_class')})")
        return Verdict("", PASS, f"the last {last_n} {component} calls succeeded")
    return _with_calls(component, check)


def probe_passes(name: str) -> Check:
    """A final probe (pool state, read-back, heal state) recorded by the runner passed."""
    def check(history: History) -> Verdict:
        event = history.probe(name)
        if event is None:
            return Verdict("", UNKNOWN, f"probe {name!r} did not run")
        return Verdict("", PASS if event.status == OK else FAIL, event.get("evidence", ""))
    return check


def opened_because(component: str, reason_contains: str) -> Check:
    """The breaker's first opening names the expected cause (e.g. the slow-call rate)."""
    def check(history: History) -> Verdict:
        opened = next((e for e in _transitions(history, component) if e.get("to") == "OPEN"), None)
        if opened is None:
            return Verdict("", FAIL, f"{component} breaker never opened")
        reason = opened.get("reason", "")
        if reason_contains not in reason:
            return Verdict("", FAIL, f"{component} breaker opened because {reason!r}, expected {reason_contains!r}")
        return Verdict("", PASS, f"{component} breaker opened because {reason}")
    return _with_breaker(component, check)


def breaker_ignores_cancellations(component: str) -> Check:
    """Many calls were cancelled, and the breaker's own counts hold none of them: it recorded exactly one
    outcome per call that completed (succeeded or failed). With no breaker's counts at all, nothing guards the
    calls. A move of the breaker is no evidence either way: its counts decide it, and they are checked.

    A failure is judged on whatever was cancelled (a breaker that counts cancellations may open after a few,
    and then refuses the calls that would have been cancelled); only a pass needs many cancellations."""
    def check(history: History) -> Verdict:
        final = history.phase("final")
        before = final[0] if final else float("inf")  # the final probes' own calls are not the workload's
        ops = [e for e in _ops(history, component) if e.t < before]
        cancelled = [e for e in ops if e.get("error_class") == "Cancelled"]
        if not cancelled:
            return Verdict("", UNKNOWN, "no call was cancelled: nothing to tell")
        outcomes = [e for e in history.of("outcome", component=component) if e.t < before]
        if observed_without_outcomes(history, component):
            return Verdict("", UNKNOWN, f"the {component} breaker is observed through its transitions only (a "
                                        f"third-party breaker's adapter): its counts, which this check reads, are "
                                        f"not in the history")
        if not outcomes:
            return Verdict("", FAIL, f"no breaker recorded any outcome of the {len(ops)} {component} calls: "
                                     f"nothing guards them")
        completed = [e for e in ops if e.status in (OK, FAIL) and e.get("error_class") != "CallNotPermitted"]
        failures = sum(1 for e in outcomes if e.status == FAIL)
        if len(outcomes) != len(completed):
            return Verdict("", FAIL, f"the {component} breaker recorded {len(outcomes)} outcomes ({failures} failures) "
                                     f"for {len(completed)} completed calls and {len(cancelled)} cancelled ones")
        if len(cancelled) < 10:
            return Verdict("", UNKNOWN, f"only {len(cancelled)} calls were cancelled: too few to tell")
        # its counts hold the completed calls only, so any move came from their failures, not from a
        # cancellation (a starved machine's pool timeouts are real failures, and a breaker must count them)
        moves = _transitions(history, component)
        why = collections.Counter(str(e.get("error_class")) for e in completed if e.status == FAIL)
        moved = (f" and moved {[e.get('to') for e in moves]} on the completed calls' own failures {dict(why)}"
                 if moves else " and stayed CLOSED")
        return Verdict("", PASS, f"{len(cancelled)} calls cancelled mid-flight; the {component} breaker recorded "
                                 f"{len(outcomes)} outcomes for {len(completed)} completed calls{moved}")
    return _with_breaker(component, check)


def failures_during_fault(component: str, at_least: int = 1) -> Check:
    """The fault really reached the calls (a check that the experiment bit at all)."""
    def check(history: History) -> Verdict:
        start, end = _window(history, "fault")
        failed = [e for e in _ops(history, component) if start <= e.t <= end + 1.0 and e.status != OK]
        if len(failed) < at_least:
            return Verdict("", FAIL, f"only {len(failed)} {component} calls failed during the fault: it did not bite")
        return Verdict("", PASS, f"{len(failed)} {component} calls failed during the fault")
    return _with_calls(component, check)


def fault_observed(fault_key: str, field: str, at_least: int, what: str) -> Check:
    """A fault reported (at heal) that what it was meant to cause really happened."""
    def check(history: History) -> Verdict:
        healed = next((e for e in history.of("fault", name=fault_key, edge="heal")), None)
        if healed is None:
            return Verdict("", UNKNOWN, f"fault {fault_key!r} was not healed in this run")
        value = (healed.get("report") or {}).get(field, 0)
        if value < at_least:
            return Verdict("", FAIL, f"{what}: {value} (expected at least {at_least})")
        return Verdict("", PASS, f"{what}: {value}")
    return check


def _calls_inside_fault(history: History, component: str) -> list[Event]:
    """Calls that started after every fault was injected and ended before the heal began: the only ones a toxic
    surely acted on from their first byte to their last (calls the breaker refused never reached it)."""
    injected = [e.t for e in history.of("fault", edge="inject")]
    heal_start, _ = _window(history, "heal")
    if not injected:
        raise LookupError("no fault was injected in this run")
    return [e for e in _ops(history, component) if e.get("started", e.t) >= max(injected) and e.t <= heal_start
            and e.get("error_class") != "CallNotPermitted"]


def fault_delay_matches(component: str, delay_s: float, low_pct: float, high_pct: float, what: str) -> Check:
    """The fastest successful call made wholly inside the fault took the delay the fault was configured to add
    (``delay_s``: a latency, or a reply's bytes over a bandwidth), within ``-low_pct``/``+high_pct``.

    The fastest, because a call can only be slower than its delay (waiting for a pooled connection, a
    validation round trip, a scheduling stall), never faster: a delay below the bound means the proxy injected
    less than it was told (a latency halved), one above it more (a one-way toxic acting on both directions)."""
    def check(history: History) -> Verdict:
        made = _calls_inside_fault(history, component)
        calls = [e for e in made if e.status == OK]
        low, high = delay_s * (1 - low_pct / 100), delay_s * (1 + high_pct / 100)
        bounds = (f"{what} {delay_s * 1000:.0f} ms, accepted {low * 1000:.0f}..{high * 1000:.0f} ms "
                  f"(-{low_pct:g}%/+{high_pct:g}%)")
        if not made:
            return Verdict("", UNKNOWN, f"no {component} call ran wholly inside the fault: nothing to measure")
        theirs = calls_not_the_labs(history, component)
        if theirs:  # a user's call may make one round trip or five, and time out before the delay shows
            return Verdict("", UNKNOWN, f"{theirs}: how many round trips each makes through the fault is not known, "
                                        f"so {what} cannot be read from them (this check is about the fault proxy, "
                                        f"judged with the lab's own clients)")
        if not calls:  # the delay is meant to be survivable: a fault that fails every call injected more
            errors = collections.Counter(e.get("error_class", "?") for e in made)
            return Verdict("", FAIL, f"none of the {len(made)} {component} calls inside the fault succeeded "
                                     f"({dict(errors)}); {bounds}")
        fastest = min(e.get("latency_s", 0.0) for e in calls)
        if not low <= fastest <= high:
            return Verdict("", FAIL, f"the fastest of {len(calls)} {component} calls inside the fault took "
                                     f"{fastest * 1000:.0f} ms; {bounds}")
        return Verdict("", PASS, f"the fastest of {len(calls)} {component} calls inside the fault took "
                                 f"{fastest * 1000:.0f} ms; {bounds}")
    return check


def _cause(event: Event) -> str:
    """The cause a translated error names ("ACTION failed while PHASE: CauseClass: detail"), else its class."""
    parts = (event.get("error") or "").split(": ")
    return parts[1] if len(parts) >= 3 else event.get("error_class", "?")


#: how a client names the reset a fault sends
RESET = "ConnectionResetError"
#: how a connection reset arrives through a forwarder that relays with sockets of its own: closed mid-call
CLOSED_MID_CALL = "ConnectionDoesNotExistError"


def reset_reached_client(component: str, at_least: int = 1) -> Check:
    """At least ``at_least`` calls during the fault failed because their connection was reset, named as the
    reset the fault sends: ConnectionResetError. Where the history's ``stack`` event says a RST cannot reach
    the clients (the compose backend: Docker's port forwarder answers it with a FIN), the strongest evidence
    the client can have is its connection closed in the middle of the call, and that is what is asked, said
    so in the evidence; with no ``stack`` event the RST is asked for."""
    def check(history: History) -> Verdict:
        theirs = calls_not_the_labs(history, component)
        if theirs:  # a service's own errors need not name their cause (asyncpg's ConnectionDoesNotExistError)
            return Verdict("", UNKNOWN, f"{theirs}, and its errors need not name their cause: whether the reset "
                                        f"reached it is read from the lab's own clients")
        path = next(history.of("stack"), None)
        relayed = path is not None and path.get("resets_reach_clients") is False
        causes = (RESET, CLOSED_MID_CALL) if relayed else (RESET,)
        start, end = _window(history, "fault")
        failed = [e for e in _ops(history, component) if start <= e.t <= end + 1.0 and e.status == FAIL]
        named = [e for e in failed if any(cause in (e.get("error") or "") for cause in causes)]
        others = collections.Counter(_cause(e) for e in failed if e not in named)
        summary = f"{len(named)} of {len(failed)} failed {component} calls name {' or '.join(causes)} (others: " \
                  f"{dict(others)})"
        if path is not None and relayed:
            summary += (f"; on the {path.get('backend')} backend a RST reaches the client as a close, so a "
                        f"connection closed mid-call counts")
        if len(named) < at_least:
            return Verdict("", FAIL, f"connection resets: {summary}; expected at least {at_least}")
        return Verdict("", PASS, f"connection resets: {summary}")
    return check


def failing(reason: str) -> Check:
    def check(history: History) -> Verdict:
        return Verdict("", FAIL, reason)
    return check


__all__ = ["FAIL", "OK", "PASS", "UNKNOWN", "Check", "Verdict", "breaker_ignores_cancellations", "breaker_opens",
           "calls_bounded", "closes_after_heal", "failing", "failures_during_fault",
           "fault_delay_matches", "fault_observed", "reset_reached_client",
           "half_open_after_wait", "half_open_permits_respected", "only_expected_errors", "opened_because",
           "probe_passes", "recovered", "run_check", "worst"]
