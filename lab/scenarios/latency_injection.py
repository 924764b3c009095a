"""400 ms of latency on Postgres replies: the slow-call rate, not failures, must open the breaker."""

from dataclasses import replace

from lab.faults.network import latency
from lab.scenario import ClientProfile, Scenario
from lab.scenario import checks

from ._common import breaker_cycle, pool_recovered

LATENCY_MS = 400
#: Round trips per call, each delayed once: the query, and the pool's reset of the connection on release
#: (asyncpg's ``Connection.reset``, run before the call returns).
ROUND_TRIPS = 2
PROFILE = replace(ClientProfile(), slow_call_s=0.2, slow_threshold_pct=50)

SCENARIO = Scenario(
    name="latency_injection",
    description="400 ms latency on Postgres replies; slow calls (>= 200 ms) must open the breaker",
    pass_criteria="the breaker opens on the slow-call rate, cycles through HALF_OPEN and closes after the heal; "
                  "the pool recovers",
    components=("pg",),
    profile=PROFILE,
    faults=lambda ctx: [ctx.toxic("postgres", latency(LATENCY_MS))],
    checks=lambda p: ([("pg: opened by the slow-call rate", checks.opened_because("pg", "slow call rate")),
                       # the fastest call inside the fault shows what the proxy injected: half (a latency
                       # halved) or twice (the toxic acting on requests too) is outside the tolerance
                       ("pg: calls delayed by the configured latency",
                        checks.fault_delay_matches("pg", ROUND_TRIPS * LATENCY_MS / 1000, 20, 50,
                                                   f"{ROUND_TRIPS} round trips of {LATENCY_MS} ms"))]
                      # no call bound (the delay is under the command timeout: no call can wait past it) and no
                      # "only expected errors" (a delay raises no error to leave untranslated): no mutant could fail
                      # them here
                      + breaker_cycle("pg", p) + [("pg: recovered", checks.recovered("pg"))] + pool_recovered()),
)
