"""Test scenario: one fault of the kind named by HEAL_FAULT, held for HEAL_FAULT_S (killed runs, each undo)."""

import os

from lab.faults.fd import ClientFdLimit, ConnectionFlood, ServerFdLimit
from lab.faults.memory import MemoryHog, MemoryLimit, MemoryTrigger
from lab.faults.network import Flapping, Partition, ToxicFault, latency
from lab.faults.process import CrashBackend, KillRestart, Pause
from lab.scenario import Scenario
from lab.scenario import checks

HUNGRY = "SELECT length(string_agg(md5(g::text), '')) FROM generate_series(1, 2000000) g"

FAULTS = {
    "toxic": lambda ctx: ToxicFault(ctx.ledger, ctx.settings.proxy_url, "postgres", latency(300)),
    "partition": lambda ctx: Partition(ctx.ledger, ctx.settings.proxy_url, "postgres"),
    "flapping": lambda ctx: Flapping(ctx.ledger, ctx.settings.proxy_url, "postgres", down_s=0.3, up_s=0.3),
    "pause": lambda ctx: Pause(ctx.ledger, ctx.settings, "kafka"),
    "kill": lambda ctx: KillRestart(ctx.ledger, ctx.settings, "postgres"),
    "crash": lambda ctx: CrashBackend(ctx.ledger, ctx.settings),
    "fd_limit": lambda ctx: ServerFdLimit(ctx.ledger, ctx.settings, "postgres", 64),
    "flood": lambda ctx: ConnectionFlood(ctx.ledger, ctx.settings, leave_free=20),
    "client_fd_limit": lambda ctx: ClientFdLimit(ctx.ledger, drop_via=ctx.settings.proxy_url),
    "memory_limit": lambda ctx: MemoryLimit(ctx.ledger, ctx.settings, "postgres", 512 * 1024 * 1024),
    "memory_trigger": lambda ctx: MemoryTrigger(ctx.ledger, ctx.settings, HUNGRY, bite_within_s=60),
    "memory_hog": lambda ctx: MemoryHog(ctx.ledger, 64, max_s=120),
}

SCENARIO = Scenario(
    name="one_fault",
    description="one fault of the kind HEAL_FAULT names (heal-guarantee tests)",
    targets=("pg",),
    baseline_s=0.3,
    fault_s=float(os.environ.get("HEAL_FAULT_S", "2")),
    recovery_timeout_s=5.0,
    faults=lambda ctx: [FAULTS[os.environ["HEAL_FAULT"]](ctx)],
    checks=lambda profile: [("no check", lambda history: checks.Verdict("", checks.PASS, "nothing to check"))],
)
