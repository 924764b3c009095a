"""The checks of the protocol-fault scenarios, on synthetic histories (issue 15)."""

from __future__ import annotations

import pytest

from lab.scenario.checks import FAIL, PASS, UNKNOWN, run_check
from lab.scenario.protocol_checks import no_unexplained_duplicates, succeeded_after_retry, unknown_found_not_lost

from .test_checks import history_with, phases

pytestmark = pytest.mark.unit


def delivery(**fields) -> tuple:
    base = {"name": "kafka.delivery", "ledger": True, "lost": 0, "unknown": 0, "unknown_delivered": 0,
            "failed_but_delivered": 0, "duplicates": [], "evidence": "report"}
    return (9.0, "probe", "ok", {**base, **fields})


def dup(status: str, sent: float, resolved: float) -> dict:
    return {"id": "m-1", "times": 3, "status": status, "sent": sent, "resolved": resolved}


def verdict(check, events) -> str:
    return run_check("c", check, history_with(phases() + events)).result


def test_unknown_found_not_lost():
    check = unknown_found_not_lost()
    assert verdict(check, [delivery(unknown=4, unknown_delivered=3)]) == PASS
    assert verdict(check, [delivery(unknown=4, unknown_delivered=0)]) == FAIL  # the fault did not bite
    assert verdict(check, [delivery(unknown=4, unknown_delivered=3, lost=1)]) == FAIL
    assert verdict(check, [delivery(unknown=4, unknown_delivered=3, failed_but_delivered=1)]) == FAIL
    assert verdict(check, [delivery(ledger=False)]) == FAIL  # no ledger cannot tell unknown from lost
    assert verdict(check, []) == UNKNOWN


def test_duplicates_are_explained_only_by_unacknowledged_writes_during_the_fault():
    written = no_unexplained_duplicates(written_unacked=True)
    assert verdict(written, [delivery(duplicates=[dup("unknown", 2.0, 4.0)])]) == PASS
    assert verdict(written, [delivery(duplicates=[dup("acked", 3.5, 4.2)])]) == PASS
    assert verdict(written, [delivery(duplicates=[dup("failed", 2.0, 2.1)])]) == FAIL  # certainly not written
    assert verdict(written, [delivery(duplicates=[dup("acked", 0.2, 0.3)])]) == FAIL  # before the fault
    refused = no_unexplained_duplicates(written_unacked=False)
    assert verdict(refused, [delivery()]) == PASS
    assert verdict(refused, [delivery(duplicates=[dup("unknown", 2.0, 4.0)])]) == FAIL


def test_succeeded_after_retry_counts_slow_successes_begun_in_the_fault():
    def op(t: float, latency: float, status: str = "ok") -> tuple:
        return (t, "op", status, {"lane": "kafka", "started": t - latency, "ended": t, "latency_s": latency})

    check = succeeded_after_retry("kafka", 0.08)
    assert verdict(check, [op(3.0, 0.5)]) == PASS
    assert verdict(check, [op(3.0, 0.01)]) == FAIL  # fast: no retry
    assert verdict(check, [op(3.0, 0.5, "fail")]) == FAIL
    assert verdict(check, [op(0.8, 0.5)]) == FAIL  # begun before the fault
