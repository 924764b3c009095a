"""Process faults through the stack's Backend: pause/resume, kill and restart, crashing one Postgres backend."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from ..config import PG_USER, Settings
from ..stack import procs
from ..stack.backend import Backend, running
from .base import Fault, FaultError
from .ledger import FaultLedger

__all__ = ["ComponentFault", "CrashBackend", "KillRestart", "Pause", "backend_of", "recorded_settings"]


def recorded_settings(data: dict[str, Any]) -> Settings:
    """The settings a fault recorded in its heal data, over this process's environment (maybe another process)."""
    return Settings.from_env({**os.environ, **data["settings"]})


def backend_of(data: dict[str, Any]) -> Backend:
    """The backend a ledger entry's fault acted on, rebuilt from the settings it recorded (another process)."""
    return running(recorded_settings(data))


class ComponentFault(Fault):
    """A fault on a whole component (its process, or its container), through the backend."""

    def __init__(self, ledger: FaultLedger, settings: Settings, component: str) -> None:
        super().__init__(ledger)
        self.settings, self.component = settings, component
        self.backend = running(settings)
        self.backend.main_process(component)  # fails now, before the ledger, if it is not running

    def key(self) -> str:
        return f"{self.kind}:{self.component}"

    def heal_data(self) -> dict[str, Any]:
        return {"component": self.component, "settings": self.settings.to_env()}


class Pause(ComponentFault):
    """SIGSTOP the component (docker pause on compose) until healed."""

    kind = "pause"

    async def _inject(self) -> None:
        await asyncio.to_thread(self.backend.pause, self.component)

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        await asyncio.to_thread(backend_of(data).resume, data["component"])


class KillRestart(ComponentFault):
    """SIGKILL the component; healing starts it again and waits until it is healthy."""

    kind = "kill"

    async def _inject(self) -> None:
        await asyncio.to_thread(self.backend.kill, self.component)

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        await asyncio.to_thread(backend_of(data).start, data["component"])


class CrashBackend(Fault):
    """SIGKILL one Postgres backend: the postmaster ends every session and runs crash recovery.

    Nothing to undo (Postgres recovers by itself); healing waits until it answers again.
    """

    kind = "crash"

    def __init__(self, ledger: FaultLedger, settings: Settings) -> None:
        super().__init__(ledger)
        self.settings = settings
        self.postmaster = running(settings).main_process("postgres")
        self.victim: int | None = None

    def key(self) -> str:
        return "crash:postgres"

    def heal_data(self) -> dict[str, Any]:
        return {"settings": self.settings.to_env()}

    async def _inject(self) -> dict[str, Any]:
        # client backends are titled "postgres: <user> <database> <address> <activity>"
        backends = [pid for pid in procs.children(self.postmaster.pid)
                    if procs.cmdline(pid).startswith(f"postgres: {PG_USER} ")]
        if not backends:
            raise FaultError("no client backend to crash: start the workload first")
        self.victim = backends[0]
        os.kill(self.victim, signal.SIGKILL)
        return {"victim": self.victim}

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        """Nothing to undo: wait until Postgres answers again after its crash recovery."""
        from ..stack import health

        settings = recorded_settings(data)
        await health.wait_healthy(lambda: health.postgres_ready(settings.pg_port, password=settings.pg_password),
                                  15.0)
