"""Process faults: pause/resume, kill and restart, and crashing one Postgres backend."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from typing import Any

from ..config import PG_USER, Settings
from ..stack import procs
from ..stack.compose import SERVICES, compose_command
from . import targets
from .base import Fault, FaultError, undo_for
from .ledger import FaultLedger


def _docker(*args: str) -> None:
    result = subprocess.run(compose_command(*args), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise FaultError(f"docker compose {' '.join(args)} failed: {result.stderr.strip()}")


class ComponentFault(Fault):
    """A fault on a whole component: its process on the local backend, its service on compose."""

    def __init__(self, ledger: FaultLedger, settings: Settings, component: str) -> None:
        super().__init__(ledger)
        self.settings, self.component = settings, component
        self.backend = targets.backend_name(settings)
        self.record = targets.component_process(settings, component) if self.backend == "local" else None

    def key(self) -> str:
        return f"{self.kind}:{self.component}"

    def undo(self) -> dict[str, Any]:
        return {"backend": self.backend, "component": self.component,
                "process": self.record.to_json() if self.record else None,
                "settings": targets.settings_env(self.settings)}


class Pause(ComponentFault):
    """SIGSTOP the component (docker pause on compose) until healed."""

    kind = "pause"

    async def _inject(self) -> None:
        if self.record is None:
            _docker("pause", SERVICES[self.component])
        else:
            os.kill(self.record.pid, signal.SIGSTOP)
            await _wait_state(self.record.pid, stopped=True)  # delivery is asynchronous


@undo_for("pause")
async def _resume(undo: dict[str, Any]) -> None:
    if undo["backend"] != "local":
        _docker("unpause", SERVICES[undo["component"]])
        return
    record = procs.ProcessRecord.from_json(undo["process"])
    if procs.is_ours(record):
        os.kill(record.pid, signal.SIGCONT)
        await _wait_state(record.pid, stopped=False)


async def _wait_state(pid: int, stopped: bool, timeout_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (procs.state_letter(pid) == "T") != stopped:
        if asyncio.get_running_loop().time() > deadline:
            raise FaultError(f"pid {pid} did not {'stop' if stopped else 'resume'} within {timeout_s:g}s")
        await asyncio.sleep(0.005)


class KillRestart(ComponentFault):
    """SIGKILL the component; healing starts it again (``lab up``) and waits until it is healthy."""

    kind = "kill"

    async def _inject(self) -> None:
        if self.record is None:
            _docker("kill", SERVICES[self.component])
            return
        os.kill(self.record.pid, signal.SIGKILL)
        await asyncio.to_thread(procs.wait_gone, self.record, 5.0)


@undo_for("kill")
async def _restart(undo: dict[str, Any]) -> None:
    if undo["backend"] != "local":
        _docker("start", SERVICES[undo["component"]])
        return
    from ..stack.local import LocalBackend

    await asyncio.to_thread(LocalBackend(targets.settings_from(undo["settings"])).up)


class CrashBackend(Fault):
    """SIGKILL one Postgres backend: the postmaster ends every session and runs crash recovery.

    Nothing to undo (Postgres recovers by itself); healing waits until it answers again.
    """

    kind = "crash"

    def __init__(self, ledger: FaultLedger, settings: Settings) -> None:
        super().__init__(ledger)
        self.settings = settings
        self.postmaster = targets.target_pid(settings, "postgres")  # the container's postmaster on compose
        self.victim: int | None = None

    def key(self) -> str:
        return "crash:postgres"

    def undo(self) -> dict[str, Any]:
        return {"settings": targets.settings_env(self.settings)}

    async def _inject(self) -> dict[str, Any]:
        # client backends are titled "postgres: <user> <database> <address> <activity>"
        backends = [pid for pid in targets.children(self.postmaster.pid)
                    if targets.cmdline(pid).startswith(f"postgres: {PG_USER} ")]
        if not backends:
            raise FaultError("no client backend to crash: start the workload first")
        self.victim = backends[0]
        os.kill(self.victim, signal.SIGKILL)
        return {"victim": self.victim}


@undo_for("crash")
async def _wait_recovered(undo: dict[str, Any]) -> None:
    from ..stack import health

    settings = targets.settings_from(undo["settings"])
    await health.wait_healthy(lambda: health.postgres_ready(settings.pg_port), 15.0)
