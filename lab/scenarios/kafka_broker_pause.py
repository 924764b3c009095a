"""The Kafka broker frozen (SIGSTOP / docker pause) for 4 s: sends must resolve by their deadlines, none lost."""

from lab.scenario import Scenario

from ._common import bounded_and_expected, breaker_cycle, no_acked_loss

SCENARIO = Scenario(
    name="kafka_broker_pause",
    description="the Kafka broker paused (SIGSTOP) for 4 s, then resumed",
    pass_criteria="every send resolves within its deadline; the breaker opens and closes; no acknowledged "
                  "message is lost",
    components=("kafka",),
    fault_s=4.0,
    faults=lambda ctx: [ctx.pause("kafka")],
    checks=lambda p: breaker_cycle("kafka", p) + bounded_and_expected("kafka", p) + no_acked_loss(),
    recovery_timeout_s=10.0,
)
