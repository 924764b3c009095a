"""Checks for HTTP targets: pure functions of the ``op`` events of the "http" lane (one per request).

Per-phase figures (``phase_figures``) are requests/s, p50/p95/p99 latency and error rate. What the
service recovered to is judged on the final phase: the HTTP target keeps the load on for
``SETTLE_S`` there before its figures are taken (the recovery phase ends as soon as calls succeed
again, too early to judge a rate on).
"""

from __future__ import annotations

from typing import Any

from .checks import FAIL, PASS, UNKNOWN, Check, Verdict
from .history import OK, Event, History

LANE = "http"
SETTLE_S = 3.0  # judged at 90%: one 0.2 s stall of a loaded machine is 13% of a 1.5 s window, 7% of 3 s
PHASES = ("baseline", "fault", "heal", "recovery", "final")


def _requests(history: History, start: float, end: float) -> list[Event]:
    return [e for e in history.of("op", lane=LANE) if start <= e.t <= end]


def _pct(values: list[float], pct: float) -> float:
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))] if values else 0.0


def figures(requests: list[Event], span_s: float) -> dict[str, Any]:
    latencies = sorted(e.get("latency_s", 0.0) * 1000 for e in requests)
    errors = sum(1 for e in requests if e.status != OK)
    return {"requests": len(requests), "rps": len(requests) / span_s if span_s > 0 else 0.0,
            "p50_ms": _pct(latencies, 50), "p95_ms": _pct(latencies, 95), "p99_ms": _pct(latencies, 99),
            "error_rate": errors / len(requests) if requests else 0.0}


def phase_figures(history: History, lane: str = LANE) -> dict[str, dict[str, Any]]:
    out = {}
    for phase in PHASES:
        window = history.phase(phase)
        if window is None:
            continue
        inside = [e for e in history.of("op", lane=lane) if window[0] <= e.t <= window[1]]
        out[phase] = figures(inside, window[1] - window[0])
    return out


def _baseline_and_tail(history: History) -> tuple[dict[str, Any], dict[str, Any]] | str:
    baseline, final = history.phase("baseline"), history.phase("final")
    if baseline is None or final is None:
        return "no baseline or final phase in the history"
    base = figures(_requests(history, *baseline), baseline[1] - baseline[0])
    tail = figures(_requests(history, *final), final[1] - final[0])
    if not base["requests"]:
        return "no request completed in the baseline"
    if base["error_rate"] > 0.5:
        return f"the baseline itself failed ({base['error_rate']:.0%} errors): nothing to recover to"
    return base, tail


def fails_fast(bound_s: float, client_timeout_s: float) -> Check:
    """Every request in flight during the fault (and its heal) was answered within ``bound_s`` (an error, at once,
    is the resilient answer), and none waited out the client's timeout. In flight: started before the heal
    ended and answered after the fault began, so a request that hung through the fault and was answered after
    the heal counts (found: a fragile service's requests, each hung until the heal and answered after it, left
    only the 10 answered early in the fault to judge, and it passed)."""
    def check(history: History) -> Verdict:
        fault, heal = history.phase("fault"), history.phase("heal")
        if fault is None:
            return Verdict("", UNKNOWN, "no fault phase in the history")
        until = heal[1] if heal else fault[1]
        inside = [e for e in history.of("op", lane=LANE)
                  if e.t >= fault[0] and e.get("started", e.t - e.get("latency_s", 0.0)) <= until]
        if not inside:
            return Verdict("", FAIL, "no request completed during the fault: every one hung")
        failed = [e for e in inside if e.status != OK]
        slow = [e for e in inside if e.get("latency_s", 0.0) > bound_s]  # a slow success hung just the same
        waited_out = [e for e in inside if e.get("latency_s", 0.0) >= 0.95 * client_timeout_s]
        slowest = max(e.get("latency_s", 0.0) for e in inside)
        if slow or waited_out:
            return Verdict("", FAIL, f"{len(slow)} of {len(inside)} requests in flight during the fault took over "
                                     f"{bound_s:g}s ({sum(1 for e in slow if e.status != OK)} of them failures; "
                                     f"slowest {slowest:.2f}s); {len(waited_out)} waited out the client's "
                                     f"{client_timeout_s:g}s timeout")
        return Verdict("", PASS, f"{len(inside)} requests in flight during the fault, {len(failed)} of them errors, "
                                 f"the slowest in {slowest * 1000:.0f} ms (bound {bound_s:g}s); none waited out the "
                                 f"client timeout")
    return check


def error_rate_recovers(slack: float = 0.01) -> Check:
    """The error rate of the recovery's last TAIL_S is at most the baseline's plus ``slack``."""
    def check(history: History) -> Verdict:
        found = _baseline_and_tail(history)
        if isinstance(found, str):
            return Verdict("", UNKNOWN, found)
        base, tail = found
        if not tail["requests"]:
            return Verdict("", FAIL, "no request completed after the recovery")
        ok = tail["error_rate"] <= base["error_rate"] + slack
        return Verdict("", PASS if ok else FAIL,
                       f"error rate {tail['error_rate']:.1%} after the recovery "
                       f"({tail['requests']} requests) vs baseline {base['error_rate']:.1%} (+{slack:.0%} allowed)")
    return check


BUCKET_S = 0.25  # throughput is counted per bucket; one bucket is about the longest stall a loaded machine makes


def sustained_rps(requests: list[Event], start: float, end: float, bucket_s: float = BUCKET_S) -> float:
    """Successful requests per second over [start, end), counted per ``bucket_s`` bucket, as the mean of the
    buckets with the lowest and the highest tenth (at least one each) left out: the same measure for the baseline
    and the recovery, so a machine's stall (a bucket with nothing answered) and Locust's catch-up after it (a
    crowded one) decide neither, while a rate that stays low in most buckets still does."""
    count = max(1, int((end - start) / bucket_s + 1e-9))
    buckets = [0] * count
    for event in requests:
        index = int((event.t - start) / bucket_s)
        if event.status == OK and 0 <= index < count:
            buckets[index] += 1
    trim = max(1, count // 10) if count > 2 else 0
    kept = sorted(buckets)[trim:count - trim]
    return sum(kept) / len(kept) / bucket_s


def throughput_recovers(fraction: float) -> Check:
    """Successful requests/s in the final phase reach ``fraction`` of the baseline's (``sustained_rps`` both)."""
    def check(history: History) -> Verdict:
        found = _baseline_and_tail(history)
        if isinstance(found, str):
            return Verdict("", UNKNOWN, found)
        baseline, final = history.phase("baseline"), history.phase("final")
        assert baseline is not None and final is not None  # _baseline_and_tail found both
        base_ok = sustained_rps(_requests(history, *baseline), *baseline)
        tail_ok = sustained_rps(_requests(history, *final), *final)
        ok = tail_ok >= fraction * base_ok
        return Verdict("", PASS if ok else FAIL,
                       f"{tail_ok:.0f} successful req/s after the recovery vs {base_ok:.0f} in the baseline (at "
                       f"least {fraction:.0%} needed; per {BUCKET_S:g} s bucket, the lowest and highest tenth "
                       f"left out)")
    return check


def breaker_open_and_back(component: str) -> Check:
    """The breaker read from the service's /metrics went OPEN during the fault and is CLOSED again at the end.
    (Polled: a HALF_OPEN shorter than the poll period is not seen, so the path back is not judged.)"""
    def check(history: History) -> Verdict:
        fault = history.phase("fault")
        if fault is None:
            return Verdict("", UNKNOWN, "no fault phase in the history")
        moves = list(history.of("breaker", component=component))
        heal = history.phase("heal")
        bitten = [e for e in _requests(history, fault[0], heal[1] if heal else fault[1]) if e.status != OK]
        if not moves and not bitten:
            return Verdict("", UNKNOWN, "no request failed during the fault: it did not reach the service, so its "
                                        "breaker had no cause to open")
        opened = next((e for e in moves if e.get("to") == "OPEN"), None)
        if opened is None or not fault[0] <= opened.t <= fault[1] + 0.5:
            return Verdict("", FAIL, f"{component} breaker did not go OPEN during the fault "
                                     f"(moves: {[e.get('to') for e in moves]})")
        if moves[-1].get("to") != "CLOSED":
            return Verdict("", FAIL, f"{component} breaker ended {moves[-1].get('to')}")
        return Verdict("", PASS, f"{component} breaker OPEN {opened.t - fault[0]:.2f}s into the fault, back to "
                                 f"CLOSED {moves[-1].t - fault[1]:.2f}s after its end (moves: "
                                 f"{[e.get('to') for e in moves]})")
    return check
