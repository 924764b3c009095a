"""Postgres and Kafka traffic swallowed (timeout toxic 0, both directions): calls must end by their own timeouts."""

from lab.faults.base import Fault
from lab.faults.network import blackhole
from lab.scenario import ClientProfile, Scenario
from lab.scenario.model import FaultContext

from ._common import call_bound_s, bounded_and_expected, breaker_cycle, no_acked_loss, pool_recovered


def faults(ctx: FaultContext) -> list[Fault]:
    return [ctx.toxic(service, blackhole(direction))
            for service in ("postgres", "kafka") for direction in ("upstream", "downstream")]


SCENARIO = Scenario(
    name="blackhole",
    description="every byte to and from Postgres and Kafka swallowed for 3.75 s (no RST, no FIN)",
    pass_criteria="every call returns by its own timeout (not TCP's); breakers open and close; no acked loss",
    components=("pg", "kafka"),
    # a call that waits out the fault (no timeout of its own) always exceeds the bound, by a second
    fault_s=call_bound_s("pg", ClientProfile()) + 1.0,
    faults=faults,
    checks=lambda p: (bounded_and_expected("pg", p) + bounded_and_expected("kafka", p) + breaker_cycle("pg", p)
                      + breaker_cycle("kafka", p) + pool_recovered() + no_acked_loss()),
    recovery_timeout_s=10.0,
)
