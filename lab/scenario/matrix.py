"""The check-by-mutant matrix: for each mutant, the scenario checks that must FAIL against it.

Read as: running SCENARIO against MUTANT, each named check's verdict is FAIL
(tests/chaos/test_mutant_matrix.py asserts it cell by cell; `lab run --mutants`
runs it and prints it). A mutant is run only on the scenarios listed for it,
which keeps the matrix test bounded. ``uncovered()`` names the checks that no
mutant is listed to fail: those rely on the negative control alone, or on nothing.
"""

from __future__ import annotations

from typing import Any

#: mutant -> scenario -> the checks that must FAIL
EXPECTED: dict[str, dict[str, tuple[str, ...]]] = {
    "breaker_threshold_exclusive": {
        "network_partition": ("pg: breaker opens when its window reaches a threshold",
                              "kafka: breaker opens when its window reaches a threshold"),
    },
    "half_open_extra_permit": {
        "flapping_network": ("pg: HALF_OPEN admits at most its permits",),
    },
    "half_open_skipped": {
        "network_partition": ("pg: HALF_OPEN after the wait", "pg: CLOSED after the heal",
                              "kafka: HALF_OPEN after the wait", "kafka: CLOSED after the heal"),
    },
    "slow_calls_uncounted": {
        "latency_injection": ("pg: opened by the slow-call rate",
                              "pg: breaker opens when its window reaches a threshold"),
    },
    "cancellations_counted": {
        "cancellation_storm": ("pg: breaker ignores cancellations",),
    },
    "pool_leaks_on_cancel": {
        "cancellation_storm": ("pg: pool recovered, no leaked sessions",),
    },
    "pg_oserror_untranslated": {
        "network_partition": ("pg: only expected errors",),
    },
    "producer_drops_unknown": {
        "kafka_broker_pause": ("kafka: one ledger entry per send",),
    },
    "producer_no_deadline": {
        "kafka_broker_pause": ("kafka: every call returns by its own timeout",),
    },
}


def cells() -> list[tuple[str, str, tuple[str, ...]]]:
    """(mutant, scenario, checks that must fail), mutant by mutant."""
    return [(mutant, scenario, checks) for mutant, row in EXPECTED.items() for scenario, checks in row.items()]


def uncovered(scenarios: dict[str, Any]) -> dict[str, list[str]]:
    """Per scenario, the checks no mutant is expected to fail."""
    covered = {(scenario, check) for _, scenario, checks in cells() for check in checks}
    out = {}
    for name, scenario in scenarios.items():
        names = [check for check, _ in scenario.checks(scenario.profile)]
        missing = [check for check in names if (name, check) not in covered]
        if missing:
            out[name] = missing
    return out
