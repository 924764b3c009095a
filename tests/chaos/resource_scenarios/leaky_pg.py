"""Test scenario: the resilient Postgres target, or (LEAKY=1) one that leaks a TCP connection per call.

The leak starts 1.3 s after the target started (once the 1.2 s baseline is over), like a client that forgets to close
what its error path opened: the fds and connections it takes are still held when the scenario recovered.
"""

import os
import socket
import time

from lab.faults.network import ToxicFault, latency
from lab.scenario import Scenario
from lab.scenario import checks
from lab.scenario.targets import PgLane

LEAK_AFTER_S = 1.3
LEAK_AT_MOST = 150


class LeakyPgLane(PgLane):
    async def start(self) -> None:
        self.leaked: list[socket.socket] = []
        self.started_at = time.monotonic()
        await super().start()

    async def op(self, sequence: int) -> None:
        try:
            await super().op(sequence)
        finally:
            if time.monotonic() - self.started_at > LEAK_AFTER_S and len(self.leaked) < LEAK_AT_MOST:
                self.leaked.append(socket.create_connection(("127.0.0.1", self.settings.proxy_api_port), timeout=1))

    async def close(self) -> None:
        for leaked in self.leaked:
            leaked.close()
        await super().close()


SCENARIO = Scenario(
    name="leaky_pg" if os.environ.get("LEAKY") == "1" else "tidy_pg",
    description="50 ms of latency on Postgres for 1.5 s; LEAKY=1: a target that leaks a connection per call",
    components=("pg",),
    baseline_s=1.2,
    fault_s=1.5,
    recovery_timeout_s=5.0,
    faults=lambda ctx: [ToxicFault(ctx.ledger, ctx.settings.proxy_url, "postgres", latency(50))],
    checks=lambda profile: [("no check", lambda history: checks.Verdict("", checks.PASS, "nothing to check"))],
    pg_lane=LeakyPgLane if os.environ.get("LEAKY") == "1" else None,
)
