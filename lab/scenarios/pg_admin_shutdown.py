"""The server terminates every session that runs the workload's query (57P01 admin_shutdown,
FATAL, then the connection closes), as an administrator's pg_terminate_backend would.

Against a user's service the fault hits the statements its target names (``statements={"pg": ...}``);
a target that names none is not hit, and the precondition says so (UNKNOWN, never a pass)."""

from lab.faults.protocol import PgStatementFault
from lab.scenario import Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, breaker_cycle, pool_recovered

QUERY = "SELECT 'lab_admin_shutdown'"

SCENARIO = Scenario(
    needs_lab_proxy="its fault is one of lab.proxy's protocol-aware toxics, which Toxiproxy does not have",
    name="pg_admin_shutdown",
    description="for 3 s every session is terminated by 57P01 admin_shutdown when it runs the workload's query",
    pass_criteria="the breaker opens and closes; killed sessions are replaced; no server session leaks; "
                  "only lab errors reach the caller",
    components=("pg",),
    pg_query=QUERY,
    faults=lambda ctx: [ctx.toxic("postgres", PgStatementFault(ctx.statement("pg", "lab_admin_shutdown"), "57P01"))],
    preconditions=lambda p: [("pg: the fault killed sessions", checks.failures_during_fault("pg", 5))],
    checks=lambda p: breaker_cycle("pg", p) + bounded_and_expected("pg", p, can_wait=False) + pool_recovered(),
)
