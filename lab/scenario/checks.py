"""Checks: pure functions of the history. Each returns a Verdict; a crashing check gives UNKNOWN.

Each check is built from the scenario's configuration, so its bounds are derived
from what the client was told to do (window sizes, waits, timeouts).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable

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


def _window(history: History, phase: str) -> tuple[float, float]:
    window = history.phase(phase)
    if window is None:
        raise LookupError(f"no {phase!r} phase in the history")
    return window


def _ops(history: History, target: str) -> list[Event]:
    return [e for e in history.of("op") if e.get("target") == target]


def _transitions(history: History, target: str) -> list[Event]:
    return [e for e in history.of("breaker") if e.get("target") == target]


def breaker_opens(target: str, window_size: int, threshold_pct: float, in_flight: int) -> Check:
    """The breaker OPENs during the fault, after at most the failures its window needs (+ calls in flight)."""
    needed = math.ceil(window_size * threshold_pct / 100)

    def check(history: History) -> Verdict:
        start, end = _window(history, "fault")
        opened = next((e for e in _transitions(history, target) if e.get("to") == "OPEN" and start <= e.t), None)
        if opened is None or opened.t > end + 0.5:
            return Verdict("", FAIL, f"{target} breaker never opened during the fault "
                                     f"({len(_transitions(history, target))} transitions in all)")
        failed = [e for e in _ops(history, target) if start <= e.get("ended", e.t) <= opened.t and e.status != OK]
        bound = needed + in_flight
        if len(failed) > bound:
            return Verdict("", FAIL, f"{target} breaker opened after {len(failed)} failed calls, more than "
                                     f"{needed} (window {window_size} x {threshold_pct:g}%) + {in_flight} in flight")
        return Verdict("", PASS, f"{target} breaker OPEN {opened.t - start:.2f}s into the fault after "
                                 f"{len(failed)} failed calls (bound {bound}): {opened.get('reason')}")
    return check


def half_open_after_wait(target: str, wait_s: float, tolerance_s: float) -> Check:
    """Every OPEN -> HALF_OPEN happens ``wait_s`` after the opening, within ``tolerance_s``."""
    def check(history: History) -> Verdict:
        transitions = _transitions(history, target)
        pairs, opened_at = [], None
        for event in transitions:
            if event.get("to") == "OPEN":
                opened_at = event.t
            elif event.get("to") == "HALF_OPEN" and opened_at is not None:
                pairs.append(event.t - opened_at)
                opened_at = None
        if not pairs:
            return Verdict("", FAIL, f"{target} breaker never went OPEN -> HALF_OPEN")
        off = [d for d in pairs if abs(d - wait_s) > tolerance_s]
        if off:
            return Verdict("", FAIL, f"{target} HALF_OPEN after {', '.join(f'{d:.3f}s' for d in off)}; "
                                     f"expected {wait_s:g}s +/- {tolerance_s:g}s")
        return Verdict("", PASS, f"{len(pairs)} OPEN -> HALF_OPEN after {min(pairs):.3f}..{max(pairs):.3f}s "
                                 f"(wait {wait_s:g}s +/- {tolerance_s:g}s)")
    return check


def closes_after_heal(target: str, within_s: float) -> Check:
    """After the heal the breaker is CLOSED, reached from HALF_OPEN (by trial calls), at most ``within_s`` after
    the heal, and it ends CLOSED.

    An intermittent fault (flapping) may let the trial calls of its last up-window through: the breaker then
    closes before the heal and stays closed, which is as good, provided that closing also came from HALF_OPEN.
    """
    def check(history: History) -> Verdict:
        heal_start, _ = _window(history, "heal")
        transitions = _transitions(history, target)
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
            return Verdict("", FAIL, f"{target} breaker did not close after the heal")
        if first.get("from") != "HALF_OPEN":
            return Verdict("", FAIL, f"{target} breaker closed from {first.get('from')}, not HALF_OPEN")
        if first.t - heal_start > within_s:
            return Verdict("", FAIL, f"{target} closed {first.t - heal_start:.2f}s after the heal (> {within_s:g}s)")
        if final != "CLOSED":
            return Verdict("", FAIL, f"{target} breaker ended {final}")
        return Verdict("", PASS, f"{target} CLOSED {when} ({first.get('reason')})")
    return check


def half_open_permits_respected(target: str, permits: int) -> Check:
    """No HALF_OPEN period admits more trial calls than its permits."""
    def check(history: History) -> Verdict:
        transitions = _transitions(history, target)
        periods = []
        for index, event in enumerate(transitions):
            if event.get("to") == "HALF_OPEN":
                end = transitions[index + 1].t if index + 1 < len(transitions) else history.now()
                periods.append((event.t, end))
        if not periods:
            return Verdict("", FAIL, f"{target} breaker was never HALF_OPEN")
        worst_count = 0
        for start, end in periods:
            admitted = [e for e in _ops(history, target) if start <= e.get("started", e.t) < end
                        and e.get("error_class") != "CallNotPermitted"]
            worst_count = max(worst_count, len(admitted))
        if worst_count > permits:
            return Verdict("", FAIL, f"a HALF_OPEN period admitted {worst_count} calls (> {permits} permits)")
        return Verdict("", PASS, f"{len(periods)} HALF_OPEN periods, at most {worst_count} trial calls "
                                 f"(permits {permits})")
    return check


def calls_bounded(target: str, bound_s: float) -> Check:
    """Every call returned (or failed) within ``bound_s``: by its own timeout, not TCP's."""
    def check(history: History) -> Verdict:
        ops = _ops(history, target)
        if not ops:
            return Verdict("", FAIL, f"no {target} calls were made")
        hung = [e for e in ops if e.status == UNKNOWN and e.get("error_class") == "Hung"]
        slowest = max(e.get("latency_s", 0.0) for e in ops)
        if hung or slowest > bound_s:
            return Verdict("", FAIL, f"{len(hung)} {target} calls never returned; slowest {slowest:.2f}s "
                                     f"(bound {bound_s:g}s)")
        return Verdict("", PASS, f"{len(ops)} {target} calls, slowest {slowest:.2f}s (bound {bound_s:g}s)")
    return check


def only_expected_errors(target: str, expected: set[str]) -> Check:
    def check(history: History) -> Verdict:
        seen: dict[str, int] = {}
        for event in _ops(history, target):
            if event.status != OK:
                name = event.get("error_class", "?")
                seen[name] = seen.get(name, 0) + 1
        unexpected = {k: v for k, v in seen.items() if k not in expected}
        if unexpected:
            return Verdict("", FAIL, f"unexpected {target} errors: {unexpected} (expected only {sorted(expected)})")
        return Verdict("", PASS, f"{target} errors: {seen or 'none'}")
    return check


def recovered(target: str, last_n: int = 10) -> Check:
    """The last calls of the run succeed."""
    def check(history: History) -> Verdict:
        tail = _ops(history, target)[-last_n:]
        if len(tail) < last_n:
            return Verdict("", FAIL, f"only {len(tail)} {target} calls at the end of the run")
        failed = [e for e in tail if e.status != OK]
        if failed:
            return Verdict("", FAIL, f"{len(failed)} of the last {last_n} {target} calls failed "
                                     f"({failed[-1].get('error_class')})")
        return Verdict("", PASS, f"the last {last_n} {target} calls succeeded")
    return check


def probe_passes(name: str) -> Check:
    """A final probe (pool state, read-back, heal state) recorded by the runner passed."""
    def check(history: History) -> Verdict:
        event = history.probe(name)
        if event is None:
            return Verdict("", UNKNOWN, f"probe {name!r} did not run")
        return Verdict("", PASS if event.status == OK else FAIL, event.get("evidence", ""))
    return check


def opened_because(target: str, reason_contains: str) -> Check:
    """The breaker's first opening names the expected cause (e.g. the slow-call rate)."""
    def check(history: History) -> Verdict:
        opened = next((e for e in _transitions(history, target) if e.get("to") == "OPEN"), None)
        if opened is None:
            return Verdict("", FAIL, f"{target} breaker never opened")
        reason = opened.get("reason", "")
        if reason_contains not in reason:
            return Verdict("", FAIL, f"{target} breaker opened because {reason!r}, expected {reason_contains!r}")
        return Verdict("", PASS, f"{target} breaker opened because {reason}")
    return check


def breaker_ignores_cancellations(target: str) -> Check:
    """Many calls were cancelled, and the breaker counted none of them (it stayed CLOSED)."""
    def check(history: History) -> Verdict:
        present = history.probe(f"{target}.breaker")
        if present is None or present.status != OK:
            return Verdict("", FAIL, f"no circuit breaker guards the {target} calls")
        cancelled = [e for e in _ops(history, target) if e.get("error_class") == "Cancelled"]
        if len(cancelled) < 10:
            return Verdict("", UNKNOWN, f"only {len(cancelled)} calls were cancelled: too few to tell")
        moves = _transitions(history, target)
        if moves:
            return Verdict("", FAIL, f"{target} breaker moved {[e.get('to') for e in moves]} under cancellations")
        return Verdict("", PASS, f"{len(cancelled)} calls cancelled mid-flight, {target} breaker stayed CLOSED")
    return check


def failures_during_fault(target: str, at_least: int = 1) -> Check:
    """The fault really reached the calls (a check that the experiment bit at all)."""
    def check(history: History) -> Verdict:
        start, end = _window(history, "fault")
        failed = [e for e in _ops(history, target) if start <= e.t <= end + 1.0 and e.status != OK]
        if len(failed) < at_least:
            return Verdict("", FAIL, f"only {len(failed)} {target} calls failed during the fault: it did not bite")
        return Verdict("", PASS, f"{len(failed)} {target} calls failed during the fault")
    return check


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


def failing(reason: str) -> Check:
    def check(history: History) -> Verdict:
        return Verdict("", FAIL, reason)
    return check


__all__ = ["FAIL", "OK", "PASS", "UNKNOWN", "Verdict", "breaker_opens", "calls_bounded", "closes_after_heal",
           "half_open_after_wait", "half_open_permits_respected", "only_expected_errors", "probe_passes",
           "recovered", "run_check", "worst"]
