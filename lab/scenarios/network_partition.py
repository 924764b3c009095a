"""Postgres and Kafka cut off (proxies disabled: connections refused and closed) for 3 s."""

from lab.scenario import Scenario

from ._common import breaker_cycle, bounded_and_expected, no_acked_loss, pool_recovered

SCENARIO = Scenario(
    name="network_partition",
    description="Postgres and Kafka unreachable for 3 s (proxies disabled)",
    pass_criteria="both breakers open within their windows, go HALF_OPEN after 1 s, close after the heal; every "
                  "Kafka send returns within its deadline; the pool recovers with no leaked sessions; no acked loss",
    components=("pg", "kafka"),
    faults=lambda ctx: [ctx.partition("postgres"), ctx.partition("kafka")],
    checks=lambda p: (breaker_cycle("pg", p) + breaker_cycle("kafka", p) + bounded_and_expected("pg", p, can_wait=False)
                      + bounded_and_expected("kafka", p) + pool_recovered() + no_acked_loss()),
)
