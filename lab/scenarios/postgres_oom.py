"""Postgres capped at 64 MB (a cgroup locally, docker update on compose) while a query needs more:
the kernel OOM-kills backends, the postmaster runs crash recovery, and every session is cut."""

from lab.scenario import Scenario
from lab.scenario import checks

from ._common import bounded_and_expected, pool_recovered

HOG = "SELECT length(string_agg(md5(g::text), '')) FROM generate_series(1, 2000000) g"

SCENARIO = Scenario(
    name="postgres_oom",
    description="Postgres limited to 64 MB by a cgroup while a hungry query runs: OOM kills, crash recovery",
    pass_criteria="the kernel OOM-kills at least one backend and calls fail; every failure is a lab error "
                  "(never a raw driver exception); the pool recovers with no leaked sessions. "
                  "Crash recovery takes milliseconds here, so the breaker need not open",
    components=("pg",),
    faults=lambda ctx: [ctx.memory_limit("postgres", 64 * 1024 * 1024), ctx.memory_trigger(HOG)],
    preconditions=lambda p: [("the memory limit bit: queries were killed", checks.fault_observed(
                                 "memory_trigger:postgres", "failed", 1, "hungry queries killed")),
                             ("pg: calls failed during the fault", checks.failures_during_fault("pg"))],
    checks=lambda p: bounded_and_expected("pg", p, can_wait=False) + pool_recovered(),
    recovery_timeout_s=10.0,
)
