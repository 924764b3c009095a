"""One producer pool member's broker connection black-holed: the pool routes around it and replaces it.

The fault is real and singles out one connection: an nftables rule in the lab's network namespace drops
every packet of the busiest established connection this process holds to the Kafka proxy (the pool's
first member's: a pool sends to its first member unless it is busier than the others), both ways, with
no RST or FIN (lab.faults.connection). The other members' connections, and any new one, are untouched.
Alone, a producer's sends on that connection wait until aiokafka's request timeout closes it and
retries; the pool must keep the acked rate up meanwhile and replace the member before then.

Not checked here, because nothing a client does can fail it under this fault (issue 11): every call bounded,
recovered, the pool back to full health. aiokafka renews the dead connection itself within its request timeout
(2 s here, under the send deadline): the one send stalled there ends at that timeout (KafkaTimeout, unknown, in
every run measured) or, with no deadline, is retried and acknowledged by ~3.1 s, inside the call bound; the other
members keep the later calls succeeding; and every member is healthy after the heal whether the pool replaced it or
not. "only expected errors" stays: that stalled send's timeout is what kafka_errors_untranslated leaks raw.
Nor "no acknowledged message lost" (its read-back still runs and is recorded): aiokafka retries every stalled send
on the connection it renews, so everything acknowledged is written, and no mutant measured loses one here
(unknown_as_acked, never_replaces, ignores_load, drops_unknown, acks_none); other Kafka scenarios judge it.
"""

from lab.faults.connection import ConnectionBlackhole
from lab.scenario import ClientProfile, Scenario, checks
from lab.scenario.pool_lane import PoolLane, acked_rate_held, few_calls_stuck, member_replaced_within

from ._common import KAFKA_ERRORS

#: The acked rate in every second of the fault, as a share of the baseline's.
RATE_HELD = 0.7
#: A call that took this long waited on the dead connection (healthy ones take milliseconds); at most this many
#: of them: what the pool had handed to that member when the fault began, and before it saw it stall (measured:
#: 1 in each of 6 runs with the pool, 2 once; 6 to 8 in 5 runs when it sends round robin, the mutant
#: pool_ignores_load).
STUCK_S, STUCK_AT_MOST = 1.0, 4
#: The wedged member replaced within this long of the fault's start: its 0.5 s stall bound, the first stalled send
#: and the pool's tick (measured 0.64-0.95 s), and still before aiokafka's own 2 s request timeout.
REPLACED_WITHIN_S = 1.5

SCENARIO = Scenario(
    name="kafka_pool_wedged",
    description="one producer pool member's broker connection black-holed (nftables, no RST or FIN) for 3 s",
    pass_criteria=f"at most {STUCK_AT_MOST} calls wait {STUCK_S:g}s or more on the dead connection; "
                  f"successful sends per second stay at >= {RATE_HELD:.0%} of the baseline in every second of the "
                  f"fault; the wedged member is replaced within {REPLACED_WITHIN_S:g} s (before aiokafka's own 2 s "
                  f"request timeout would have renewed its connection); only LabErrors reach the caller; "
                  f"one ledger entry per send",
    components=("kafka",),
    # aiokafka renews a connection whose request timed out: 2 s of it makes a stall long enough to tell a pool
    # that routes around the dead connection from one that keeps sending into it
    profile=ClientProfile(request_timeout_s=2.0, send_deadline_s=4.0),
    kafka_lane=PoolLane,
    needs_commands=("nft", "ss"),
    needs_commands_why="the fault drops one connection's packets with an nftables rule it finds with ss, as root "
                       "(Debian: apt-get install nftables iproute2)",
    faults=lambda ctx: [ConnectionBlackhole(ctx.ledger, ctx.settings.kafka_proxy_port)],
    # the pool's own properties, only LabErrors, and one ledger entry per send
    checks=lambda p: [("kafka: acked rate held while one connection is black-holed", acked_rate_held("kafka",
                                                                                                     RATE_HELD)),
                      ("kafka: few calls stuck behind the black-holed connection",
                       few_calls_stuck("kafka", STUCK_S, STUCK_AT_MOST)),
                      ("kafka: the wedged pool member replaced",
                       member_replaced_within(min(p.request_timeout_s, REPLACED_WITHIN_S))),
                      ("kafka: only expected errors", checks.only_expected_errors("kafka", KAFKA_ERRORS)),
                      ("kafka: one ledger entry per send", checks.probe_passes("kafka.ledger"))],
)

