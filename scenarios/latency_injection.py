"""400 ms of latency on Postgres replies: the slow-call rate, not failures, must open the breaker."""

from dataclasses import replace

from lab.faults.network import ToxicFault, latency
from lab.scenario import ClientProfile, Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, breaker_cycle, pool_recovered

PROFILE = replace(ClientProfile(), slow_call_s=0.2, slow_threshold_pct=50)

SCENARIO = Scenario(
    name="latency_injection",
    description="400 ms latency on Postgres replies; slow calls (>= 200 ms) must open the breaker",
    pass_criteria="the breaker opens on the slow-call rate, cycles through HALF_OPEN and closes after the heal; "
                  "calls stay within their timeouts; the pool recovers",
    targets=("pg",),
    profile=PROFILE,
    faults=lambda ctx: [ToxicFault(ctx.ledger, ctx.settings.proxy_url, "postgres", latency(400))],
    checks=lambda p: ([("pg: opened by the slow-call rate", checks.opened_because("pg", "slow call rate"))]
                      + breaker_cycle("pg", p) + bounded_and_expected("pg", p) + pool_recovered()),
)
