"""Checks for the protocol-aware fault scenarios (issue 15): pure functions of the history,
reading the structured ``kafka.delivery`` probe of KafkaLedgerLane and the workload's ops."""

from __future__ import annotations

from .checks import FAIL, PASS, UNKNOWN, Check, Verdict, _ops, _window, _with_calls
from .history import OK, Event, History


def _delivery(history: History) -> Event | None:
    return history.probe("kafka.delivery")


def unknown_found_not_lost() -> Check:
    """Written-but-not-acknowledged, told apart: the ledger marked sends unknown, the read-back
    found some of them, and no acknowledged or failed send disagrees with the read-back."""
    def check(history: History) -> Verdict:
        probe = _delivery(history)
        if probe is None or probe.status != OK:
            return Verdict("", UNKNOWN, "no delivery report" if probe is None else probe.get("evidence", ""))
        if not probe.get("ledger"):
            return Verdict("", FAIL, "the producer keeps no ledger: an unacknowledged send that was written "
                                     "cannot be told from a lost one")
        if probe.get("lost") or probe.get("failed_but_delivered"):
            return Verdict("", FAIL, probe.get("evidence", ""))
        if probe.get("unknown_delivered", 0) < 1:
            return Verdict("", FAIL, f"no unknown send was found in the read-back ({probe.get('evidence')}): "
                                     "the fault did not write without acknowledging")
        return Verdict("", PASS, f"{probe.get('unknown')} sends unknown, {probe.get('unknown_delivered')} of them "
                                 f"found written; none lost ({probe.get('evidence')})")
    return check


def no_unexplained_duplicates(written_unacked: bool, slack_s: float = 3.0) -> Check:
    """A message read back twice is explained only by a send retried after a write that was not
    acknowledged: so only where the fault forwards requests (``written_unacked``), only for a
    send that overlapped the fault (plus ``slack_s`` for retries in flight), and never for one
    the ledger calls failed (certainly not written)."""
    def check(history: History) -> Verdict:
        probe = _delivery(history)
        if probe is None or probe.status != OK:
            return Verdict("", UNKNOWN, "no delivery report")
        start, end = _window(history, "fault")
        unexplained = []
        for dup in probe.get("duplicates") or []:
            sent, resolved = dup.get("sent"), dup.get("resolved")
            overlaps = sent is not None and resolved is not None and sent <= end + slack_s and resolved >= start
            if not written_unacked or dup.get("status") == "failed" or not overlaps:
                unexplained.append(f"{dup['id']} x{dup['times']} ({dup.get('status')})")
        if unexplained:
            return Verdict("", FAIL, f"{len(unexplained)} duplicates the ledger cannot explain: "
                                     f"{', '.join(unexplained[:5])}")
        return Verdict("", PASS, f"{len(probe.get('duplicates') or [])} duplicates, each a send retried after an "
                                 "unacknowledged write during the fault" if written_unacked else "no duplicates")
    return check


def succeeded_after_retry(component: str, min_latency_s: float, at_least: int = 1) -> Check:
    """Calls during the fault that succeeded only after the client retried (slower than one
    attempt can be): the errors were retried through, not just survived by luck."""
    def check(history: History) -> Verdict:
        start, end = _window(history, "fault")
        retried = [e for e in _ops(history, component)
                   if start <= e.get("started", e.t) <= end and e.status == OK
                   and e.get("latency_s", 0.0) >= min_latency_s]
        if len(retried) < at_least:
            return Verdict("", FAIL, f"{len(retried)} {component} calls succeeded after retrying during the fault "
                                     f"(at least {at_least} needed)")
        return Verdict("", PASS, f"{len(retried)} {component} calls succeeded after retrying "
                                 f"(>= {min_latency_s * 1000:.0f} ms) during the fault")
    return _with_calls(component, check)
