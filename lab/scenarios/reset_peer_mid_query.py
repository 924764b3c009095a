"""Every Postgres query reset (TCP RST) 50 ms after it is sent: connections must be replaced, none leaked."""

from lab.faults.network import reset_peer
from lab.scenario import Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, breaker_cycle, pool_recovered

SCENARIO = Scenario(
    name="reset_peer_mid_query",
    description="TCP RST 50 ms into every Postgres query (queries take 100 ms) for 3 s",
    pass_criteria="the breaker opens and closes; broken connections are replaced; no server session leaks",
    components=("pg",),
    pg_query="SELECT pg_sleep(0.1)",
    faults=lambda ctx: [ctx.toxic("postgres", reset_peer(50, "upstream"))],
    checks=lambda p: (breaker_cycle("pg", p) + bounded_and_expected("pg", p, can_wait=False) + pool_recovered()
                      + [("pg: the reset reached the client",
                          checks.reset_reached_client("pg"))]),
)
