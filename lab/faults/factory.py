"""Fault factories for scenario authors: ``ctx.partition("postgres")``, ``ctx.toxic("postgres", latency(400))``.

The run context (``lab.scenario.FaultContext``) inherits these methods, so a scenario names
only the service and the fault's own parameters; the ledger, the proxy API URL and the
settings come from the context. Each factory returns the fault class the scenario would
otherwise build by hand (and tests still may): nothing here injects anything.
"""

from __future__ import annotations

from typing import Any

from ..errors import FaultError
from ..services import SERVICES
from .fd import ClientFdLimit, ConnectionFlood, ServerFdLimit
from .ledger import FaultLedger
from .memory import MemoryHog, MemoryLimit, MemoryTrigger
from .network import Flapping, Partition, ToxicFault, ToxicSpec
from .process import CrashBackend, KillRestart, Pause
from .protocol import KafkaResponseFault, PgStatementFault

__all__ = ["FaultFactory", "service"]


def service(name: str) -> str:
    """``name`` if it is a service of the lab; a FaultError naming it and the choices if not."""
    if name not in SERVICES:
        raise FaultError(f"no service {name!r}: choose from {', '.join(SERVICES)}")
    return name


class FaultFactory:
    """Mixed into the run context: needs ``settings`` (lab.config.Settings) and ``ledger`` (FaultLedger)."""

    settings: Any
    ledger: FaultLedger

    def toxic(self, name: str, spec: ToxicSpec | PgStatementFault | KafkaResponseFault) -> ToxicFault:
        """A toxic on the service's proxy: a Toxiproxy one (``latency(400)``) or a lab.proxy protocol one."""
        if isinstance(spec, (ToxicSpec, PgStatementFault, KafkaResponseFault)):
            return ToxicFault(self.ledger, self.settings.proxy_url, service(name), spec)
        raise FaultError(f"toxic needs a ToxicSpec (latency(), bandwidth(), ...) or a protocol fault, "
                         f"got {type(spec).__name__}")

    def partition(self, name: str) -> Partition:
        """The service's proxy disabled: connections refused and the open ones closed."""
        return Partition(self.ledger, self.settings.proxy_url, service(name))

    def flapping(self, name: str, down_s: float, up_s: float) -> Flapping:
        return Flapping(self.ledger, self.settings.proxy_url, service(name), down_s=down_s, up_s=up_s)

    def pause(self, name: str) -> Pause:
        """The service's server frozen (SIGSTOP, docker pause) until healed."""
        return Pause(self.ledger, self.settings, service(name))

    def kill_restart(self, name: str) -> KillRestart:
        """The service's server SIGKILLed; healing starts it again."""
        return KillRestart(self.ledger, self.settings, service(name))

    def crash_backend(self) -> CrashBackend:
        """One Postgres backend SIGKILLed: the postmaster ends every session and runs crash recovery."""
        return CrashBackend(self.ledger, self.settings)

    def server_fd_limit(self, name: str, nofile: int) -> ServerFdLimit:
        return ServerFdLimit(self.ledger, self.settings, service(name), nofile)

    def connection_flood(self, leave_free: int = 0, drop_clients: bool = False) -> ConnectionFlood:
        """Postgres's connection slots taken; ``drop_clients``: the clients' own connections are dropped first."""
        return ConnectionFlood(self.ledger, self.settings, leave_free,
                               drop_via=self.settings.proxy_url if drop_clients else None)

    def client_fd_limit(self, drop_clients: bool = False) -> ClientFdLimit:
        """This process out of descriptors; ``drop_clients``: its Postgres connections are dropped first."""
        return ClientFdLimit(self.ledger, drop_via=self.settings.proxy_url if drop_clients else None)

    def memory_limit(self, name: str, limit_bytes: int) -> MemoryLimit:
        return MemoryLimit(self.ledger, self.settings, service(name), limit_bytes)

    def memory_trigger(self, sql: str, period_s: float = 0.2, bite_within_s: float = 20.0) -> MemoryTrigger:
        """A memory-hungry query on Postgres, run again and again while in force."""
        return MemoryTrigger(self.ledger, self.settings, sql, period_s, bite_within_s)

    def memory_hog(self, size_mb: int, max_s: float = 120.0) -> MemoryHog:
        return MemoryHog(self.ledger, size_mb, max_s)
