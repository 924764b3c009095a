"""One producer pool member's broker connection black-holed: the pool routes around it and replaces it.

The fault is real and singles out one connection: an nftables rule in the lab's network namespace drops
every packet of the oldest established connection this process holds to the Kafka proxy (the pool's
first member's: it took the first sends), both ways, with no RST or FIN (lab.faults.connection). The
other members' connections, and any new one, are untouched. Alone, a producer's sends on that
connection wait until aiokafka's request timeout closes it and retries; the pool must keep the acked
rate up meanwhile and replace the member before then.
"""

from lab.faults.connection import ConnectionBlackhole
from lab.scenario import Scenario, checks
from lab.scenario.pool_lane import POOL_CONFIG, PoolLane, acked_rate_held, member_replaced_within

from ._common import bounded_and_expected, no_acked_loss

#: The acked rate in every second of the fault, as a share of the baseline's.
RATE_HELD = 0.7

SCENARIO = Scenario(
    name="kafka_pool_wedged",
    description="one producer pool member's broker connection black-holed (nftables, no RST or FIN) for 3 s",
    pass_criteria=f"successful sends per second stay at >= {RATE_HELD:.0%} of the baseline in every second of the "
                  f"fault; the wedged member is replaced within 1 s (before aiokafka's own 1 s request timeout "
                  f"would have renewed its connection); no acked message lost; every send bounded",
    components=("kafka",),
    kafka_lane=PoolLane,
    faults=lambda ctx: [ConnectionBlackhole(ctx.ledger, ctx.settings.kafka_proxy_port)],
    checks=lambda p: ([("kafka: acked rate held while one connection is black-holed", acked_rate_held("kafka",
                                                                                                      RATE_HELD)),
                       ("kafka: the wedged pool member replaced",
                        member_replaced_within(min(p.request_timeout_s, POOL_CONFIG.wedged_s + 0.5))),
                       ("kafka: pool back to full health", checks.probe_passes("kafka.pool"))]
                      + bounded_and_expected("kafka", p) + no_acked_loss()),
)

