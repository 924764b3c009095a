"""Postgres reachable half the time (down 0.4 s, up 0.6 s): HALF_OPEN must never admit more than its permits."""

from lab.scenario import Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, pool_recovered

SCENARIO = Scenario(
    name="flapping_network",
    description="the Postgres proxy flaps down 0.4 s / up 0.6 s for 4 s",
    pass_criteria="no HALF_OPEN period admits more trial calls than its permits; only lab errors reach the caller; the "
                  "breaker and pool recover",
    components=("pg",),
    # trial calls of 100 ms, four times the 25 ms between calls: a HALF_OPEN with one permit too many would hand
    # it out (with calls of a few ms the first two trials decide before a third call arrives)
    pg_query="SELECT pg_sleep(0.1)",
    fault_s=4.0,
    faults=lambda ctx: [ctx.flapping("postgres", down_s=0.4, up_s=0.6)],
    checks=lambda p: ([("pg: HALF_OPEN admits at most its permits",
                        checks.half_open_permits_respected("pg", p.permits)),
                       ("pg: CLOSED after the heal", checks.closes_after_heal("pg", p.wait_open_s + 4.0))]
                      + bounded_and_expected("pg", p, can_wait=False) + pool_recovered()),
)
