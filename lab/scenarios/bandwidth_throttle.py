"""Postgres replies throttled to 10 KB/s: a 4 KB result takes 0.4 s, measured against what the toxic was told."""

from dataclasses import replace

from lab.faults.network import bandwidth
from lab.scenario import ClientProfile, Scenario
from lab.scenario import checks

PROFILE = replace(ClientProfile(), slow_call_s=0.3, slow_threshold_pct=50)
RATE_KBPS = 10
RESULT_BYTES = 4000  # the reply's payload alone: its framing only adds to the delay
DELAY_S = RESULT_BYTES / (RATE_KBPS * 1000)

SCENARIO = Scenario(
    name="bandwidth_throttle",
    description=f"Postgres replies limited to {RATE_KBPS} KB/s (results of {RESULT_BYTES} bytes: "
                f"{DELAY_S * 1000:.0f} ms each); the slow-call rate must open the breaker",
    pass_criteria="calls inside the fault take the time their bytes owe at the configured rate (-20%/+50%), and "
                  "the breaker opens on the slow-call rate",
    components=("pg",),
    profile=PROFILE,
    pg_query=f"SELECT repeat('x', {RESULT_BYTES})",
    faults=lambda ctx: [ctx.toxic("postgres", bandwidth(RATE_KBPS))],
    checks=lambda p: [
        ("pg: calls delayed by the configured bandwidth",
         checks.fault_delay_matches("pg", DELAY_S, 20, 50, f"{RESULT_BYTES} bytes at {RATE_KBPS} KB/s")),
        ("pg: opened by the slow-call rate", checks.opened_because("pg", "slow call rate")),
    ],
)
