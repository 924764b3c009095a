"""Kafka cut off for 14 s, longer than the consumer group's 10 s session timeout: the member is
expired and must rejoin, then consume everything that was acknowledged."""

from lab.scenario import Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, breaker_cycle, no_acked_loss

SCENARIO = Scenario(
    name="kafka_partition_long",
    description="Kafka unreachable for 14 s, longer than the consumer's 10 s session timeout (rejoin)",
    pass_criteria="the producer's breaker cycles and nothing acked is lost; the consumer is expired, rejoins "
                  "the group and consumes every acked message (duplicates are counted)",
    components=("kafka",),
    consumer_session_s=10.0,
    fault_s=14.0,
    faults=lambda ctx: [ctx.partition("kafka")],
    checks=lambda p: (breaker_cycle("kafka", p) + bounded_and_expected("kafka", p) + no_acked_loss()
                      + [("consumer rejoined the group", checks.probe_passes("kafka.rejoined")),
                         ("consumer consumed every acked message", checks.probe_passes("kafka.consumed"))]),
    recovery_timeout_s=20.0,
    needs_apache_kafka="Tansu 0.6 never expires group members on session timeout (measured: same member id and "
                      "generation after a 9 s partition with a 6 s session timeout), so the rejoin can only be "
                      "exercised against Apache Kafka (the compose backend's official image)",
)
