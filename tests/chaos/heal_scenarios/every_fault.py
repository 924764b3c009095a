"""Test scenario: one fault of every kind at once. HEAL_MODE=pass|fail|raise picks how the run ends."""

import os

from lab.faults.base import Fault
from lab.faults.network import latency
from lab.scenario import Scenario
from lab.scenario import checks


class Explodes(Fault):
    """Injected last; raises, as a bug in a scenario would."""

    kind = "explodes"

    def key(self):
        return "explodes"

    def heal_data(self):
        return {}

    async def _inject(self):
        raise RuntimeError("a scenario bug, mid-injection")

    @classmethod
    async def heal_from(cls, data):
        return None


def faults(ctx):
    plan = [ctx.toxic("kafka", latency(100)),
            ctx.partition("postgres"),
            ctx.pause("kafka"),
            ctx.server_fd_limit("postgres", 64),
            ctx.memory_limit("postgres", 512 * 1024 * 1024)]
    if os.environ.get("HEAL_MODE") == "raise":
        plan.append(Explodes(ctx.ledger))
    return plan


def plan_checks(profile):
    if os.environ.get("HEAL_MODE") == "fail":
        return [("deliberately failing check", checks.failing("this check always fails"))]
    return [("no check", lambda history: checks.Verdict("", checks.PASS, "nothing to check"))]


SCENARIO = Scenario(
    name="every_fault",
    description="one fault of every kind at once (heal-guarantee tests)",
    components=("pg",),
    baseline_s=0.3,
    fault_s=float(os.environ.get("HEAL_FAULT_S", "2")),
    recovery_timeout_s=3.0,
    faults=faults,
    checks=plan_checks,
)
