"""Postgres in a 64 MB memory cgroup while a query needs more: the kernel OOM-kills backends,
the postmaster runs crash recovery, and every session (the pool's too) is cut."""

from lab.faults.memory import CgroupMemoryLimit, MemoryTrigger
from lab.scenario import Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, pool_recovered

HOG = "SELECT length(string_agg(md5(g::text), '')) FROM generate_series(1, 2000000) g"

SCENARIO = Scenario(
    name="postgres_oom",
    description="Postgres limited to 64 MB by a cgroup while a hungry query runs: OOM kills, crash recovery",
    pass_criteria="the kernel OOM-kills at least one backend and calls fail; every failure is a lab error "
                  "(never a raw driver exception); calls stay bounded; the pool recovers with no leaked sessions. "
                  "Crash recovery takes milliseconds here, so the breaker need not open",
    targets=("pg",),
    faults=lambda ctx: [CgroupMemoryLimit(ctx.ledger, ctx.settings, "postgres", 64 * 1024 * 1024),
                        MemoryTrigger(ctx.ledger, ctx.settings, HOG)],
    checks=lambda p: ([("kernel OOM-killed a backend", checks.fault_observed(
                          "cgroup_memory:postgres", "oom_kills", 1, "OOM kills in the cgroup")),
                       ("pg: calls failed during the fault", checks.failures_during_fault("pg"))]
                      + bounded_and_expected("pg", p) + pool_recovered()),
    recovery_timeout_s=10.0,
    backends=("local",),
)
