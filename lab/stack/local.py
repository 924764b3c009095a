"""The local backend: Postgres, Tansu and lab.proxy as processes on this machine.

``up`` is idempotent: components recorded as running are kept; dead ones (a
SIGKILLed broker, say) are started again. If ``up`` fails, it stops what it
started in that call, so nothing is left half-done. ``down`` stops exactly the
processes recorded in the state file and waits until their ports are free.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol, TypeVar

from ..config import Settings
from ..errors import StackError, StartTimeout
from . import health, limits, procs
from . import state as state_file
from .kafka import LocalKafka
from .postgres import LocalPostgres, data_roots
from .proxy import LocalProxy
from .procs import ProcessRecord
from .state import ComponentState, StackState

T = TypeVar("T")

STOP_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 1.5
SIGNAL_TIMEOUT_S = 2.0  # SIGSTOP and SIGCONT are delivered asynchronously


class Component(Protocol):
    name: str
    stop_signal: signal.Signals

    def ports(self) -> list[int]: ...
    def prepare(self) -> None: ...
    def start(self, log: Path) -> procs.ProcessRecord: ...
    def info(self) -> dict[str, Any]: ...
    async def after_start(self) -> None: ...
    async def probe(self) -> str: ...
    def endpoints(self) -> dict[str, Any]: ...


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # start order: the quick ones first, so they boot while Postgres runs initdb
        self.components: dict[str, Component] = {
            c.name: c for c in (LocalProxy(settings), LocalKafka(settings), LocalPostgres(settings))
        }

    @property
    def state_dir(self) -> Path:
        return self.settings.state_path

    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def _load(self) -> StackState:
        current = state_file.load(self.state_dir)
        if current is None:
            return StackState(self.name)
        if current.backend != self.name:
            raise StackError(f"a {current.backend} stack is recorded in {self.state_dir}; "
                             f"run `python -m lab down` before starting the {self.name} backend")
        return current

    # -- up --------------------------------------------------------------------

    def up(self) -> dict[str, str]:
        """Bring every component up; returns {name: 'started'|'running'|'resumed'}."""
        current = self._load()
        actions: dict[str, str] = {}
        to_start: list[Component] = []
        for name, component in self.components.items():
            recorded = current.components.get(name)
            if recorded and recorded.process and procs.is_ours(recorded.process):
                if procs.state_letter(recorded.process.pid) == "T":
                    os.kill(recorded.process.pid, signal.SIGCONT)
                    actions[name] = "resumed"
                else:
                    actions[name] = "running"
            else:
                to_start.append(component)
        for component in to_start:
            for port in component.ports():
                procs.require_free(port)
        for component in to_start:
            component.prepare()
        started: list[str] = []
        try:
            for component in to_start:
                record = component.start(self.log_path(component.name))
                current.components[component.name] = ComponentState(component.name, record, info=component.info())
                state_file.save(self.state_dir, current)
                started.append(component.name)
                actions[component.name] = "started"
            records = {n: current.components[n].process for n in started}
            asyncio.run(self._wait_healthy([self.components[n] for n in started], self.components.values(),
                                           records))
        except BaseException:
            self._stop([current.components[n] for n in started])
            for name in started:
                current.components.pop(name, None)
            if current.components:
                state_file.save(self.state_dir, current)
            else:
                state_file.clear(self.state_dir)
            raise
        return actions

    async def _wait_healthy(self, started: list[Component], everything: object,
                            records: dict[str, procs.ProcessRecord | None] | None = None) -> None:
        """Every component healthy within the timeout; a started one that exits meanwhile fails ``up`` at once."""
        timeout = self.settings.start_timeout_s
        records = records or {}

        async def healthy(component: Component) -> None:
            if component in started:
                async with asyncio.timeout(timeout):  # 3.11's wait_for can swallow a cancellation
                    await component.after_start()
            await health.wait_healthy(component.probe, timeout)

        async def ready(component: Component) -> None:
            try:
                record = records.get(component.name)
                if record is None:
                    await healthy(component)
                    return
                waiting = asyncio.ensure_future(healthy(component))
                watching = asyncio.ensure_future(_exited(record))
                try:
                    await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (waiting, watching):
                        task.cancel()
                    await asyncio.gather(waiting, watching, return_exceptions=True)
                if not waiting.cancelled() and waiting.exception() is None:
                    return
                if watching.done() and not watching.cancelled():
                    log = self.log_path(component.name)
                    raise StackError(f"{component.name} (pid {record.pid}) exited while starting\n"
                                     f"last lines of {log}:\n{procs.tail(log)}")
                waiting.result()
            except (health.Unhealthy, asyncio.TimeoutError, OSError) as err:
                log = self.log_path(component.name)
                raise StartTimeout(
                    f"{component.name} did not become healthy within {timeout:g}s: {err or 'timed out'}\n"
                    f"last lines of {log}:\n{procs.tail(log)}") from None

        await asyncio.gather(*(ready(c) for c in everything))  # type: ignore[attr-defined]

    # -- down ------------------------------------------------------------------

    def _stop(self, components: list[ComponentState]) -> list[str]:
        """Signal every recorded process first, then wait for each: parallel shutdown."""
        signalled = []
        for recorded in components:
            if recorded.process is None or not procs.is_ours(recorded.process):
                continue
            sig = self.components[recorded.name].stop_signal if recorded.name in self.components else signal.SIGTERM
            try:
                if procs.state_letter(recorded.process.pid) == "T":
                    os.kill(recorded.process.pid, signal.SIGCONT)
                os.kill(recorded.process.pid, sig)
                signalled.append(recorded)
            except ProcessLookupError:
                continue
        for recorded in signalled:
            assert recorded.process is not None  # only recorded processes were signalled
            if not procs.wait_gone(recorded.process, STOP_TIMEOUT_S):
                procs.stop(recorded.process, signal.SIGKILL, STOP_TIMEOUT_S)
        return [r.name for r in signalled]

    def down(self, purge: bool = False) -> list[str]:
        current = self._load()
        stopped = self._stop(list(current.components.values()))
        ports = [p for c in self.components.values() for p in c.ports()]
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and still_listening(ports):
            time.sleep(0.02)
        state_file.clear(self.state_dir)
        if purge:
            self.purge()
        return stopped

    def purge(self) -> None:
        for root in data_roots(self.settings):
            shutil.rmtree(root.parent if root.parent.name.startswith("data-") else root, ignore_errors=True)

    # -- status, logs, heal ----------------------------------------------------

    def status(self) -> dict[str, Any]:
        current = state_file.load(self.state_dir)
        if current is not None and current.backend != self.name:
            raise StackError(f"the recorded stack is {current.backend}")
        recorded = current.components if current else {}

        async def probe(component: Component) -> tuple[bool, str]:
            try:
                return True, await asyncio.wait_for(component.probe(), PROBE_TIMEOUT_S)
            except (health.Unhealthy, asyncio.TimeoutError, OSError) as err:
                return False, str(err) or "timed out"

        names = list(self.components)
        results = asyncio.run(_gather(*(probe(self.components[n]) for n in names)))
        report = {}
        for name, (healthy, detail) in zip(names, results):
            entry = recorded.get(name)
            process = entry.process if entry else None
            running = bool(process and procs.is_ours(process))
            paused = running and procs.state_letter(process.pid) == "T"  # type: ignore[union-attr]
            report[name] = {
                "pid": process.pid if process else None,
                "running": running,
                "paused": paused,
                "healthy": healthy and running,
                "health": detail if running else ("not started" if process is None else "not running"),
                **self.components[name].endpoints(),
                "log": str(self.log_path(name)),
            }
        return {"backend": self.name, "up": current is not None, "components": report}

    def logs(self, names: list[str], lines: int) -> str:
        out = []
        for name in names or list(self.components):
            if name not in self.components:
                raise StackError(f"no component {name!r}: choose from {', '.join(self.components)}")
            out.append(f"==> {self.log_path(name)} <==\n{procs.tail(self.log_path(name), lines)}")
        return "\n".join(out)

    def resume_paused(self) -> list[str]:
        current = state_file.load(self.state_dir)
        resumed = []
        for recorded in (current.components.values() if current else []):
            if recorded.process and procs.is_ours(recorded.process) and procs.state_letter(recorded.process.pid) == "T":
                self.resume(recorded.name)
                resumed.append(recorded.name)
        return resumed

    # -- what faults do ----------------------------------------------------------------------------------

    def main_process(self, component: str) -> ProcessRecord:
        if component not in self.components:
            raise StackError(f"no component {component!r}: choose from {', '.join(self.components)}")
        current = state_file.load(self.state_dir)
        entry = current.components.get(component) if current else None
        if entry is None or entry.process is None or not procs.is_ours(entry.process):
            raise StackError(f"component {component!r} is not running under this lab (run `python -m lab up`)")
        return entry.process

    def pause(self, component: str) -> None:
        record = self.main_process(component)
        os.kill(record.pid, signal.SIGSTOP)
        _wait_state(record, stopped=True)

    def resume(self, component: str) -> None:
        try:
            record = self.main_process(component)
        except StackError:
            return  # not running: nothing is paused
        if procs.state_letter(record.pid) == "T":
            os.kill(record.pid, signal.SIGCONT)
            _wait_state(record, stopped=False)

    def kill(self, component: str) -> None:
        record = self.main_process(component)
        os.kill(record.pid, signal.SIGKILL)
        if not procs.wait_gone(record, STOP_TIMEOUT_S):
            raise StackError(f"{component} (pid {record.pid}) survived SIGKILL for {STOP_TIMEOUT_S:g}s")

    def start(self, component: str) -> None:
        self.up()  # starts what is dead and waits until everything is healthy

    def set_memory_limit(self, component: str, limit_bytes: int, record: Callable[[dict[str, Any]], None]) -> None:
        limits.cap_memory(self.main_process(component), limit_bytes, record)

    def restore_memory_limit(self, undo: dict[str, Any]) -> None:
        limits.uncap_memory(undo)

    def oom_kills(self, undo: dict[str, Any]) -> int:
        return limits.oom_kills(undo["version"], Path(undo["group"]))

    def problems(self) -> list[str]:
        current = state_file.load(self.state_dir)
        found = []
        for name, component in (current.components.items() if current else []):
            if component.process is None or not procs.is_ours(component.process):
                found.append(f"{name} is not running")
            elif procs.state_letter(component.process.pid) == "T":
                found.append(f"{name} is still stopped (SIGSTOP)")
            elif limits.cgroup_of(component.process.pid)[1].name.startswith(limits.CGROUP_PREFIX):
                found.append(f"{name} is still in a memory-capped cgroup")
        if current is None:
            found.append("the stack is not up")
        return found

    def kafka_flavour(self) -> str:
        return "tansu"

    def proxy_flavour(self) -> str:
        return "lab.proxy"

    def resets_reach_clients(self) -> bool:
        return True  # clients connect to the proxy's own listening socket


def _wait_state(record: ProcessRecord, stopped: bool) -> None:
    deadline = time.monotonic() + SIGNAL_TIMEOUT_S
    while (procs.state_letter(record.pid) == "T") != stopped:
        if time.monotonic() > deadline:
            raise StackError(f"pid {record.pid} did not {'stop' if stopped else 'resume'} within "
                             f"{SIGNAL_TIMEOUT_S:g}s")
        time.sleep(0.005)


def still_listening(ports: list[int]) -> set[int]:
    """The subset of ``ports`` something still listens on."""
    return {port for port in ports if procs.listening_inodes(port)}


async def _exited(record: procs.ProcessRecord, interval_s: float = 0.05) -> None:
    """Returns once the process is gone (or a zombie); the caller bounds it."""
    while procs.is_ours(record):
        await asyncio.sleep(interval_s)


async def _gather(*aws: Awaitable[T]) -> list[T]:
    return list(await asyncio.gather(*aws))
