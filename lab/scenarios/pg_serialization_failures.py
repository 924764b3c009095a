"""30% of the workload's conflicting statements answered with 40001 serialization_failure, by the
postgres toxic (the server itself raises it, so the transaction really is rolled back)."""

from lab.faults.protocol import PgStatementFault
from lab.scenario import Scenario
from lab.scenario import checks
from lab.scenario.protocol_targets import TXN_MARKER, PgTxnLane

from ._common import PG_ERRORS, pool_recovered

SCENARIO = Scenario(
    needs_lab_proxy="its fault is one of lab.proxy's protocol-aware toxics, which Toxiproxy does not have",
    name="pg_serialization_failures",
    description="for 3 s, 30% of the transactions' second statements fail with 40001 serialization_failure",
    pass_criteria="the retry policy reruns every rolled-back transaction; every transaction commits exactly once "
                  "and nothing a failed attempt wrote survives; the pool recovers",
    components=("pg",),
    pg_lane=PgTxnLane,
    faults=lambda ctx: [ctx.toxic("postgres", PgStatementFault(ctx.statement("pg", TXN_MARKER), "40001",
                                                                     probability=0.3))],
    checks=lambda p: [
        ("pg: 40001 transactions were rerun", checks.probe_passes("pg.retried")),
        ("pg: no transaction gave up on 40001 early", checks.probe_passes("pg.all_committed")),
        ("pg: each committed exactly once, failed attempts left nothing", checks.probe_passes("pg.exactly_once")),
        # no "every call returns by its own timeout": the 40001 is answered at once, no call can wait on it
        ("pg: only expected errors", checks.only_expected_errors("pg", PG_ERRORS)),
    ] + pool_recovered(),
)
