"""Postgres replies squeezed to 1 KB/s: 3 KB results take 3 s, past the 1 s command timeout."""

from lab.faults.network import bandwidth
from lab.scenario import ClientProfile, Scenario

from ._common import call_bound_s, bounded_and_expected, breaker_cycle, pool_recovered

SCENARIO = Scenario(
    name="bandwidth_starvation",
    description="Postgres replies limited to 1 KB/s for 3.75 s (results of 3 KB)",
    pass_criteria="calls end at their command timeout; the breaker opens and closes; the pool recovers",
    components=("pg",),
    pg_query="SELECT repeat('x', 3000)",
    # a call that waits out the fault (no timeout of its own) always exceeds the bound, by a second
    fault_s=call_bound_s("pg", ClientProfile()) + 1.0,
    faults=lambda ctx: [ctx.toxic("postgres", bandwidth(1))],
    checks=lambda p: breaker_cycle("pg", p) + bounded_and_expected("pg", p) + pool_recovered(),
    recovery_timeout_s=10.0,
)
