"""Assertions on a test's history, built on the scenario checks: the same verdict, raised as an
AssertionError (``CheckFailed``) with the check's evidence when it is not a PASS. UNKNOWN fails too: a test
that could not gather the evidence has not shown the property."""

from __future__ import annotations

from typing import Iterable

from ..scenario import checks
from ..scenario.checks import PASS, Check, Verdict, run_check
from ..scenario.history import FAIL, OK, History


class CheckFailed(AssertionError):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"{verdict.check}: {verdict.result.upper()}: {verdict.evidence}")
        self.verdict = verdict


def assert_check(history: History, name: str, check: Check) -> Verdict:
    verdict = run_check(name, check, history)
    if verdict.result != PASS:
        raise CheckFailed(verdict)
    return verdict


def assert_breaker_cycle(history: History, component: str, wait_open_s: float, tolerance_s: float = 0.15,
                         close_within_s: float = 5.0) -> list[Verdict]:
    """``component``'s breaker OPENs during the fault, goes HALF_OPEN ``wait_open_s`` after (within
    ``tolerance_s``), and is CLOSED again from HALF_OPEN within ``close_within_s`` of the heal."""
    return [
        assert_check(history, f"{component}: breaker opens during the fault", checks.opened_because(component, "")),
        assert_check(history, f"{component}: HALF_OPEN after the wait",
                     checks.half_open_after_wait(component, wait_open_s, tolerance_s)),
        assert_check(history, f"{component}: CLOSED after the heal", checks.closes_after_heal(component,
                                                                                            close_within_s)),
    ]


def assert_calls_bounded(history: History, component: str, bound_s: float) -> Verdict:
    return assert_check(history, f"{component}: every call returns within {bound_s:g}s",
                        checks.calls_bounded(component, bound_s))


def assert_recovered(history: History, component: str, last_n: int = 10) -> Verdict:
    return assert_check(history, f"{component}: recovered", checks.recovered(component, last_n))


def assert_no_acked_loss(history: History, acked: Iterable[str], read_back: Iterable[str]) -> Verdict:
    """Every acknowledged message id is in what was read back (recorded as the ``kafka.readback`` probe the
    scenarios' check reads)."""
    acked_ids, read_ids = list(acked), set(read_back)
    missing = [m for m in acked_ids if m not in read_ids]
    history.add("probe", FAIL if missing else OK, name="kafka.readback",
                evidence=f"{len(acked_ids)} acknowledged, {len(missing)} missing from the read-back"
                         + (f" (first: {missing[:5]})" if missing else ""))
    return assert_check(history, "kafka: no acknowledged message lost", checks.probe_passes("kafka.readback"))
