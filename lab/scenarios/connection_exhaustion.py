"""Every Postgres connection slot taken by another client while the pool must reconnect."""

from lab.scenario import Scenario

from ._common import bounded_and_expected, breaker_cycle, pool_recovered

SCENARIO = Scenario(
    name="connection_exhaustion",
    description="a flood takes all max_connections slots, then the pool's connections drop",
    pass_criteria="'too many clients' opens the breaker; only lab errors reach the caller; once the flood ends "
                  "the pool recovers with no leaked sessions",
    components=("pg",),
    faults=lambda ctx: [ctx.connection_flood(drop_clients=True)],
    checks=lambda p: breaker_cycle("pg", p) + bounded_and_expected("pg", p, can_wait=False) + pool_recovered(),
)
