"""Check sets shared by the scenarios, with bounds derived from the client profile."""

from __future__ import annotations

from lab.errors import (CallNotPermitted, DatabaseUnavailable, KafkaTimeout, KafkaUnavailable, PoolExhausted,
                        QueryTimeout)
from lab.scenario import checks
from lab.scenario.profile import ClientProfile

#: Only LabErrors: a raw driver error (asyncpg's, aiokafka's) reaching the workload is a failure of the client.
PG_ERRORS = {cls.__name__ for cls in (DatabaseUnavailable, QueryTimeout, PoolExhausted, CallNotPermitted)}
KAFKA_ERRORS = {cls.__name__ for cls in (KafkaUnavailable, KafkaTimeout, CallNotPermitted)}
SLACK_S = 0.75


def call_bound_s(component: str, p: ClientProfile) -> float:
    if component == "pg":  # acquire (incl. validation) + command, each bounded
        return p.acquire_timeout_s + p.command_timeout_s + SLACK_S
    return p.send_deadline_s + SLACK_S


def breaker_cycle(component: str, p: ClientProfile) -> list[tuple[str, checks.Check]]:
    """CLOSED -> OPEN within the window's failures, HALF_OPEN after the wait, CLOSED after the heal."""
    return [
        (f"{component}: breaker opens when its window reaches a threshold", checks.breaker_opens(
            component, p.window, p.minimum_calls, p.failure_threshold_pct, p.slow_threshold_pct, p.slow_call_s)),
        (f"{component}: HALF_OPEN after the wait", checks.half_open_after_wait(component, p.wait_open_s, 0.15)),
        (f"{component}: CLOSED after the heal", checks.closes_after_heal(component, p.wait_open_s + 4.0)),
    ]


def bounded_and_expected(component: str, p: ClientProfile, can_wait: bool = True) -> list[tuple[str, checks.Check]]:
    """Calls bounded by their own timeouts, only LabErrors, the last calls succeed.

    ``can_wait=False`` where the fault answers at once (refuses, resets, errors, or delays less than the
    timeouts): no call can wait on it, so a client without timeouts passes the bound too and the check would
    prove nothing; it is left out there (issue 11: a check no mutant can fail is rewritten or removed)."""
    expected = PG_ERRORS if component == "pg" else KAFKA_ERRORS
    bounded = [(f"{component}: every call returns by its own timeout",
                checks.calls_bounded(component, call_bound_s(component, p)))] if can_wait else []
    return bounded + [
        (f"{component}: only expected errors", checks.only_expected_errors(component, expected)),
        (f"{component}: recovered", checks.recovered(component)),
    ]


def pool_recovered() -> list[tuple[str, checks.Check]]:
    return [("pg: pool recovered, no leaked sessions", checks.probe_passes("pg.pool")),
            ("pg: latency back to baseline", checks.probe_passes("pg.latency"))]


def no_acked_loss() -> list[tuple[str, checks.Check]]:
    return [("kafka: no acknowledged message lost", checks.probe_passes("kafka.readback")),
            ("kafka: one ledger entry per send", checks.probe_passes("kafka.ledger"))]
