"""Postgres SIGKILLed for 3 s, then started again: the pool must reconnect by itself."""

from lab.scenario import Scenario

from ._common import bounded_and_expected, breaker_cycle, pool_recovered

SCENARIO = Scenario(
    name="postgres_restart",
    description="the Postgres server killed (SIGKILL) and restarted 3 s later",
    pass_criteria="the breaker opens, cycles and closes after the restart; only lab errors reach the caller; the pool "
                  "reconnects to idle == size with no leaked sessions",
    components=("pg",),
    faults=lambda ctx: [ctx.kill_restart("postgres")],
    checks=lambda p: breaker_cycle("pg", p) + bounded_and_expected("pg", p, can_wait=False) + pool_recovered(),
    recovery_timeout_s=10.0,
)
