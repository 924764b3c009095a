"""Half of all Postgres calls cancelled mid-acquire or mid-query: no failure counted, nothing leaked."""

from lab.scenario import Scenario
from lab.scenario import checks

from ._common import pool_recovered

SCENARIO = Scenario(
    name="cancellation_storm",
    description="half of all Postgres calls cancelled at random moments for 4 s (no network fault)",
    pass_criteria="cancellations are neither successes nor failures (the breaker stays CLOSED); afterwards "
                  "idle == size and no server session is left behind",
    components=("pg",),
    pg_query="SELECT pg_sleep(0.02)",
    storm_rate=0.5,
    fault_s=4.0,
    faults=lambda ctx: [],
    checks=lambda p: ([("pg: breaker ignores cancellations", checks.breaker_ignores_cancellations("pg")),
                       ("pg: recovered", checks.recovered("pg"))] + pool_recovered()),
)
