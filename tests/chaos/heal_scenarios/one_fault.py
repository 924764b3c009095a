"""Test scenario: one fault of the kind named by HEAL_FAULT, held for HEAL_FAULT_S (killed runs, each undo)."""

import os

from lab.faults.connection import ConnectionBlackhole
from lab.faults.network import ToxicFault, latency
from lab.faults.protocol import PgStatementFault
from lab.scenario import Scenario
from lab.scenario import checks

HUNGRY = "SELECT length(string_agg(md5(g::text), '')) FROM generate_series(1, 2000000) g"

class UserToxic(ToxicFault):
    """A fault kind defined outside lab (as a user scenario may): `lab heal` loads it from the file the ledger
    names, since lab_user_scenarios.one_fault is not importable by name in another process."""

    kind = "user_toxic"


FAULTS = {
    "user_fault": lambda ctx: UserToxic(ctx.ledger, ctx.settings.proxy_url, "postgres", latency(200)),
    "toxic": lambda ctx: ctx.toxic("postgres", latency(300)),
    "protocol_toxic": lambda ctx: ctx.toxic("postgres", PgStatementFault("lab_never_sent", "40001")),
    "partition": lambda ctx: ctx.partition("postgres"),
    "flapping": lambda ctx: ctx.flapping("postgres", down_s=0.3, up_s=0.3),
    "pause": lambda ctx: ctx.pause("kafka"),
    "kill": lambda ctx: ctx.kill_restart("postgres"),
    "crash": lambda ctx: ctx.crash_backend(),
    "fd_limit": lambda ctx: ctx.server_fd_limit("postgres", 64),
    "flood": lambda ctx: ctx.connection_flood(leave_free=20),
    "client_fd_limit": lambda ctx: ctx.client_fd_limit(drop_clients=True),
    "memory_limit": lambda ctx: ctx.memory_limit("postgres", 512 * 1024 * 1024),
    "memory_trigger": lambda ctx: ctx.memory_trigger(HUNGRY, bite_within_s=60),
    "memory_hog": lambda ctx: ctx.memory_hog(64, max_s=120),
    "connection_blackhole": lambda ctx: ConnectionBlackhole(ctx.ledger, ctx.settings.pg_proxy_port),
}

SCENARIO = Scenario(
    name="one_fault",
    description="one fault of the kind HEAL_FAULT names (heal-guarantee tests)",
    components=("pg",),
    baseline_s=0.3,
    fault_s=float(os.environ.get("HEAL_FAULT_S", "2")),
    recovery_timeout_s=5.0,
    faults=lambda ctx: [FAULTS[os.environ["HEAL_FAULT"]](ctx)],
    checks=lambda profile: [("no check", lambda history: checks.Verdict("", checks.PASS, "nothing to check"))],
)
