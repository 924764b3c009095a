"""Memory pressure: a memory limit on a component, a query that needs more, and a bounded memory hog."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

from ..clients.pg_errors import translated
from ..config import Settings
from ..errors import ClientError
from ..stack import procs
from ..stack.backend import running
from . import pgadmin
from .base import Fault, FaultError, positive
from .ledger import FaultLedger
from .process import backend_of, recorded_settings

__all__ = ["MemoryHog", "MemoryLimit", "MemoryTrigger"]


class MemoryLimit(Fault):
    """Cap the component's memory (a cgroup of its own locally, ``docker update`` on compose): the kernel
    OOM-kills past it. The heal restores the previous limit."""

    kind = "memory_limit"

    def __init__(self, ledger: FaultLedger, settings: Settings, component: str, limit_bytes: int) -> None:
        positive("limit_bytes", limit_bytes)
        super().__init__(ledger)
        self.settings, self.component, self.limit_bytes = settings, component, limit_bytes
        self.backend = running(settings)
        self.backend.main_process(component)  # fails now, before the ledger, if it is not running
        self.oom_kills: int | None = None

    def key(self) -> str:
        return f"memory_limit:{self.component}"

    def heal_data(self) -> dict[str, Any]:
        return {"component": self.component, "settings": self.settings.to_env(), "limit": None}

    async def _inject(self) -> None:
        def record(limit: dict[str, Any]) -> None:  # called by the backend before it changes anything
            assert self.entry is not None
            self.ledger.update(self.entry, heal_data={**self.heal_data(), "limit": limit})

        await asyncio.to_thread(self.backend.set_memory_limit, self.component, self.limit_bytes, record)

    async def heal(self) -> None:
        if self.entry is not None and self.entry["heal_data"].get("limit") and self.oom_kills is None:
            self.oom_kills = self.backend.oom_kills(self.entry["heal_data"]["limit"])  # read before it is undone
        await super().heal()

    def report(self) -> dict[str, Any]:
        return {"oom_kills": self.oom_kills or 0}

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        if data.get("limit"):
            await asyncio.to_thread(backend_of(data).restore_memory_limit, data["limit"])


class MemoryTrigger(Fault):
    """Keeps running a memory-hungry query (direct, not through the proxy) while in force.

    Injecting returns once the first hungry query has failed (killed, or refused during the
    crash recovery that follows), so the fault window starts when the limit has bitten however
    long reclaim takes on this machine; it fails with a FaultError if that takes over ``bite_within_s``.
    """

    kind = "memory_trigger"
    APPLICATION = "chaoslab-memory-trigger"

    def __init__(self, ledger: FaultLedger, settings: Settings, sql: str, period_s: float = 0.2,
                 bite_within_s: float = 20.0) -> None:
        positive("period_s", period_s)
        positive("bite_within_s", bite_within_s)
        super().__init__(ledger)
        self.settings, self.sql, self.period_s, self.bite_within_s = settings, sql, period_s, bite_within_s
        self._task: asyncio.Task[None] | None = None
        self._bitten = asyncio.Event()
        self.runs = self.killed = 0

    def key(self) -> str:
        return "memory_trigger:postgres"

    def heal_data(self) -> dict[str, Any]:
        return {"settings": self.settings.to_env()}

    async def _inject(self) -> None:
        self._task = asyncio.ensure_future(self._trigger())
        try:
            await asyncio.wait_for(self._bitten.wait(), self.bite_within_s)
        except asyncio.TimeoutError:
            raise FaultError(f"no hungry query failed within {self.bite_within_s:g}s ({self.runs} ran): the "
                             f"memory limit did not bite") from None

    async def _trigger(self) -> None:
        while True:
            self.runs += 1
            try:
                conn = await pgadmin.connect(self.settings, self.APPLICATION, timeout_s=2)
                try:
                    with translated("running the hungry query"):
                        await conn.fetchval(self.sql, timeout=10)
                finally:
                    conn.terminate()
            except ClientError:
                self.killed += 1  # OOM-killed mid-query, or refused during crash recovery
                self._bitten.set()
            await asyncio.sleep(self.period_s)

    async def heal(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await super().heal()

    def report(self) -> dict[str, Any]:
        return {"runs": self.runs, "failed": self.killed}

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        await pgadmin.end_sessions(recorded_settings(data), cls.APPLICATION)


class MemoryHog(Fault):
    """A separate process that holds ``size_mb`` of memory until healed (or ``max_s`` at most)."""

    kind = "memory_hog"

    def __init__(self, ledger: FaultLedger, size_mb: int, max_s: float = 120.0) -> None:
        positive("size_mb", size_mb)
        positive("max_s", max_s)
        super().__init__(ledger)
        self.size_mb, self.max_s = size_mb, max_s
        self.proc: subprocess.Popen[bytes] | None = None

    def key(self) -> str:
        return f"memory_hog:{self.size_mb}"

    def heal_data(self) -> dict[str, Any]:
        return {"process": None}

    async def _inject(self) -> dict[str, Any]:
        code = (f"import time\nblock = bytearray({self.size_mb} * 1024 * 1024)\n"
                f"for i in range(0, len(block), 4096): block[i] = 1\ntime.sleep({self.max_s})\n")
        # no inherited stdio: a hog holding its parent's pipes would keep whoever reads them waiting
        self.proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ticks = procs.start_ticks(self.proc.pid) or 0
        return {"process": procs.ProcessRecord(self.proc.pid, ticks, sys.executable).to_json()}

    async def heal(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        await super().heal()

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        if data.get("process"):
            record = procs.ProcessRecord.from_json(data["process"])
            if procs.is_ours(record):
                os.kill(record.pid, signal.SIGKILL)
