"""Every produce request answered NOT_LEADER_OR_FOLLOWER by the kafka toxic, never reaching the
broker: the producer must keep each send within its deadline, retry through the errors (sends
begun during the fault get through once it ends), lose nothing acked and duplicate nothing."""

from lab.faults.protocol import KafkaResponseFault
from lab.scenario import Scenario
from lab.scenario.protocol_checks import no_unexplained_duplicates, succeeded_after_retry
from lab.scenario.protocol_targets import KafkaLedgerLane

from ._common import bounded_and_expected, no_acked_loss

SCENARIO = Scenario(
    needs_lab_proxy="its fault is one of lab.proxy's protocol-aware toxics, which Toxiproxy does not have",
    name="kafka_not_leader",
    description="for 3 s every produce request gets NOT_LEADER_OR_FOLLOWER (the broker never sees it)",
    pass_criteria="sends resolve within their deadline; sends begun during the fault are retried and acknowledged "
                  "once it ends; no acknowledged message is lost; no duplicate (nothing refused was written)",
    components=("kafka",),
    kafka_lane=KafkaLedgerLane,
    faults=lambda ctx: [ctx.toxic("kafka", KafkaResponseFault("NOT_LEADER_OR_FOLLOWER", "produce", forward=False))],
    checks=lambda p: ([("kafka: sends retried through the errors", succeeded_after_retry("kafka", 0.08, 1)),
                       ("kafka: no duplicate the ledger cannot explain", no_unexplained_duplicates(False))]
                      + bounded_and_expected("kafka", p) + no_acked_loss()),
)
