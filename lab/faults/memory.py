"""Memory pressure: a cgroup memory limit on a component (v1 or v2), and a bounded memory hog."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from ..config import Settings
from ..stack import procs
from . import targets
from .base import Fault, FaultError, positive, undo_for
from .ledger import FaultLedger

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_of(pid: int) -> tuple[str, Path]:
    """('v1'|'v2', the memory cgroup directory ``pid`` is in)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return "v1", CGROUP_ROOT / "memory" / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return "v2", CGROUP_ROOT / line[3:].lstrip("/")
    raise FaultError(f"no memory cgroup controller for pid {pid}")


class CgroupMemoryLimit(Fault):
    """Move the component and its children into a new cgroup with ``limit_bytes``: the kernel OOM-kills."""

    kind = "cgroup_memory"

    def __init__(self, ledger: FaultLedger, settings: Settings, component: str, limit_bytes: int) -> None:
        positive("limit_bytes", limit_bytes)
        super().__init__(ledger)
        self.settings, self.component, self.limit_bytes = settings, component, limit_bytes
        self.record = targets.component_process(settings, component)
        self.version, self.parent = cgroup_of(self.record.pid)
        self.group = self.parent / f"chaoslab-{uuid.uuid4().hex[:8]}"

    def key(self) -> str:
        return f"cgroup_memory:{self.component}"

    def undo(self) -> dict[str, Any]:
        return {"version": self.version, "parent": str(self.parent), "group": str(self.group),
                "process": self.record.to_json()}

    async def _inject(self) -> dict[str, Any]:
        try:
            self.group.mkdir()
        except OSError as err:
            raise FaultError(f"cannot create cgroup {self.group}: {err.strerror}") from None
        limit_file = "memory.limit_in_bytes" if self.version == "v1" else "memory.max"
        (self.group / limit_file).write_text(str(self.limit_bytes))
        if self.version == "v1" and (self.group / "memory.memsw.limit_in_bytes").exists():
            try:
                (self.group / "memory.memsw.limit_in_bytes").write_text(str(self.limit_bytes))
            except OSError:
                pass  # swap accounting off: the memory limit alone applies
        moved = []
        for pid in [self.record.pid] + targets.children(self.record.pid):
            try:
                (self.group / "cgroup.procs").write_text(str(pid))
                moved.append(pid)
            except OSError:
                continue
        return {"moved": moved}

    async def heal(self) -> None:
        self.oom_kills = self._oom_kills()  # read before the group is removed
        await super().heal()

    def _oom_kills(self) -> int:
        try:
            text = (self.group / ("memory.oom_control" if self.version == "v1" else "memory.events")).read_text()
        except OSError:
            return getattr(self, "oom_kills", 0)
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return 0

    def report(self) -> dict[str, Any]:
        return {"oom_kills": getattr(self, "oom_kills", self._oom_kills())}


class DockerMemoryLimit(Fault):
    """Compose: ``docker update --memory`` on the component's container; heal restores the old limit.

    Docker cannot remove a limit once set, so a container that had none gets the
    host's total memory back (in effect no limit).
    """

    kind = "docker_memory"

    def __init__(self, ledger: FaultLedger, component: str, limit_bytes: int) -> None:
        positive("limit_bytes", limit_bytes)
        super().__init__(ledger)
        self.component, self.limit_bytes = component, limit_bytes
        self.container = targets.container_id(component)
        self.previous = int(targets.inspect(self.container, "{{.HostConfig.Memory}}") or 0)

    def key(self) -> str:
        return f"docker_memory:{self.component}"

    def undo(self) -> dict[str, Any]:
        return {"container": self.container, "previous_bytes": self.previous}

    async def _inject(self) -> None:
        _docker_update(memory_update_command(self.container, self.limit_bytes))


def host_memory_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise FaultError("cannot read MemTotal from /proc/meminfo")


def memory_update_command(container: str, limit_bytes: int) -> list[str]:
    """Memory and memory+swap move together (docker refuses a memory limit above the swap limit)."""
    return ["docker", "update", "--memory", str(limit_bytes), "--memory-swap", str(limit_bytes), container]


def _docker_update(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise FaultError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


@undo_for("docker_memory")
async def _restore_docker_memory(undo: dict[str, Any]) -> None:
    previous = undo["previous_bytes"] or host_memory_bytes()
    _docker_update(["docker", "update", "--memory", str(previous), "--memory-swap", "-1", undo["container"]])


def memory_limit(ledger: FaultLedger, settings: Settings, component: str, limit_bytes: int) -> Fault:
    """The backend's way to cap a component's memory: a cgroup locally, docker update on compose."""
    if targets.backend_name(settings) == "compose":
        return DockerMemoryLimit(ledger, component, limit_bytes)
    return CgroupMemoryLimit(ledger, settings, component, limit_bytes)


class MemoryTrigger(Fault):
    """Keeps running a memory-hungry query (direct, not through the proxy) while in force."""

    kind = "memory_trigger"
    APPLICATION = "chaoslab-memory-trigger"

    def __init__(self, ledger: FaultLedger, settings: Settings, sql: str, period_s: float = 0.2) -> None:
        positive("period_s", period_s)
        super().__init__(ledger)
        self.settings, self.sql, self.period_s = settings, sql, period_s
        self._task: asyncio.Task[None] | None = None
        self.runs = self.killed = 0

    def _dsn(self) -> str:
        from ..config import HOST, PG_DATABASE, PG_PASSWORD, PG_USER

        return f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.settings.pg_port}/{PG_DATABASE}"

    def key(self) -> str:
        return "memory_trigger:postgres"

    def undo(self) -> dict[str, Any]:
        return {"dsn": self._dsn()}

    async def _inject(self) -> None:
        self._task = asyncio.ensure_future(self._trigger())

    async def _trigger(self) -> None:
        import asyncpg

        while True:
            self.runs += 1
            try:
                conn = await asyncpg.connect(self._dsn(), timeout=2,
                                             server_settings={"application_name": self.APPLICATION})
                try:
                    await conn.fetchval(self.sql, timeout=10)
                finally:
                    conn.terminate()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError):
                self.killed += 1  # OOM-killed mid-query, or refused during crash recovery
            await asyncio.sleep(self.period_s)

    async def heal(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await super().heal()

    def report(self) -> dict[str, Any]:
        return {"runs": self.runs, "failed": self.killed}


@undo_for("memory_trigger")
async def _stop_trigger(undo: dict[str, Any]) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(undo["dsn"], timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                           MemoryTrigger.APPLICATION)
    finally:
        await conn.close()


@undo_for("cgroup_memory")
async def _remove_cgroup(undo: dict[str, Any]) -> None:
    group, parent = Path(undo["group"]), Path(undo["parent"])
    if not group.exists():
        return
    for _ in range(50):
        pids = [p for p in (group / "cgroup.procs").read_text().split() if p]
        for pid in pids:
            try:
                (parent / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # exited meanwhile
        try:
            group.rmdir()
            return
        except OSError:
            await asyncio.sleep(0.05)  # a process was forked into it meanwhile: move again
    raise FaultError(f"cannot remove cgroup {group}")


class MemoryHog(Fault):
    """A separate process that holds ``size_mb`` of memory until healed (or ``max_s`` at most)."""

    kind = "memory_hog"

    def __init__(self, ledger: FaultLedger, size_mb: int, max_s: float = 120.0) -> None:
        positive("size_mb", size_mb)
        positive("max_s", max_s)
        super().__init__(ledger)
        self.size_mb, self.max_s = size_mb, max_s
        self.proc: subprocess.Popen | None = None

    def key(self) -> str:
        return f"memory_hog:{self.size_mb}"

    def undo(self) -> dict[str, Any]:
        return {"process": None}

    async def _inject(self) -> dict[str, Any]:
        code = (f"import time\nblock = bytearray({self.size_mb} * 1024 * 1024)\n"
                f"for i in range(0, len(block), 4096): block[i] = 1\ntime.sleep({self.max_s})\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        ticks = procs.start_ticks(self.proc.pid) or 0
        return {"process": procs.ProcessRecord(self.proc.pid, ticks, sys.executable).to_json()}

    async def heal(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        await super().heal()


@undo_for("memory_hog")
async def _kill_hog(undo: dict[str, Any]) -> None:
    if undo.get("process"):
        record = procs.ProcessRecord.from_json(undo["process"])
        if procs.is_ours(record):
            os.kill(record.pid, signal.SIGKILL)
