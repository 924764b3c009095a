"""Every produce request reaches the broker and is written, but its response says
REQUEST_TIMED_OUT: the producer's ledger must call those sends unknown (not failed, not acked)
and the read-back must find them, so the checker tells "unknown" from "lost"."""

from lab.faults.protocol import KafkaResponseFault
from lab.scenario import Scenario
from lab.scenario import checks
from lab.scenario.protocol_checks import no_unexplained_duplicates, unknown_found_not_lost
from lab.scenario.protocol_targets import KafkaLedgerLane

from ._common import KAFKA_ERRORS, call_bound_s

SCENARIO = Scenario(
    needs_lab_proxy="its fault is one of lab.proxy's protocol-aware toxics, which Toxiproxy does not have",
    name="kafka_written_not_acked",
    description="for 3 s every produce request is written by the broker but answered REQUEST_TIMED_OUT",
    pass_criteria="sends resolve by their deadline as unknown; the read-back finds them written; nothing acked is "
                  "lost; duplicates only from retries of unacknowledged writes; sends recover after the heal",
    components=("kafka",),
    kafka_lane=KafkaLedgerLane,
    faults=lambda ctx: [ctx.toxic("kafka", KafkaResponseFault("REQUEST_TIMED_OUT", "produce", forward=True))],
    checks=lambda p: ([("kafka: unknown sends found written, none lost", unknown_found_not_lost()),
                       ("kafka: duplicates only from unacknowledged writes", no_unexplained_duplicates(True)),
                       ("kafka: every call returns by its own timeout",
                        checks.calls_bounded("kafka", call_bound_s("kafka", p))),
                       ("kafka: only expected errors", checks.only_expected_errors("kafka", KAFKA_ERRORS)),
                       ("kafka: recovered", checks.recovered("kafka"))]
                      # not "no acknowledged message lost": the fault writes every produce request, so nothing
                      # acknowledged can go missing (no mutant could fail it); loss is judged by "unknown sends
                      # found written, none lost"
                      + [("kafka: one ledger entry per send", checks.probe_passes("kafka.ledger"))]),
)
