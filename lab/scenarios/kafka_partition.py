"""Kafka cut off for 3 s, shorter than the consumer group's 10 s session timeout."""

from lab.scenario import Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, breaker_cycle, no_acked_loss

SCENARIO = Scenario(
    name="kafka_partition",
    description="Kafka unreachable for 3 s, shorter than the consumer's 10 s session timeout",
    pass_criteria="the producer's breaker cycles, sends stay within their deadlines, no acked message is lost; "
                  "the consumer keeps its group membership (no rebalance) and consumes every acked message",
    components=("kafka",),
    consumer_session_s=10.0,
    faults=lambda ctx: [ctx.partition("kafka")],
    checks=lambda p: (breaker_cycle("kafka", p) + bounded_and_expected("kafka", p) + no_acked_loss()
                      + [("consumer kept its membership", checks.probe_passes("kafka.kept_membership")),
                         ("consumer consumed every acked message", checks.probe_passes("kafka.consumed"))]),
    recovery_timeout_s=10.0,
)
