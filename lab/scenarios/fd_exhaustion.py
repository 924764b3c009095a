"""The client out of file descriptors (EMFILE) while its pool must reconnect."""

from lab.scenario import Scenario

from ._common import bounded_and_expected, breaker_cycle, pool_recovered

SCENARIO = Scenario(
    name="fd_exhaustion",
    description="the lab process may open no new file descriptor (EMFILE) while its pool must reconnect",
    pass_criteria="EMFILE opens the breaker like any connection failure; only lab errors reach the caller; the pool "
                  "recovers once the limit is restored",
    components=("pg",),
    faults=lambda ctx: [ctx.client_fd_limit(drop_clients=True)],
    checks=lambda p: breaker_cycle("pg", p) + bounded_and_expected("pg", p, can_wait=False) + pool_recovered(),
)
