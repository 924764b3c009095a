"""The Backend contract, and choosing one: compose only where a Docker engine answers and the images can be had.

Faults, the runner and the checks act on the stack only through a ``Backend``;
nothing else branches on a backend's name, reads the state file or a container.
Component names are ``COMPONENTS``. Every method is blocking and bounded in time
(faults call them through ``asyncio.to_thread``).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, Callable, Protocol

from ..config import Settings
from . import state as state_file
from .procs import ProcessRecord


class Backend(Protocol):
    """What the lab needs from a running stack, whatever runs it (processes, containers, later pods)."""

    name: str
    settings: Settings

    def up(self) -> dict[str, str]:
        """Bring every component up and healthy; {component: 'started'|'running'|'resumed'}."""

    def down(self, purge: bool = False) -> list[str]:
        """Stop what ``up`` started; the components stopped."""

    def status(self) -> dict[str, Any]:
        """{'backend', 'up', 'components': {name: {'pid', 'running', 'paused', 'healthy', 'health', ...}}}."""

    def logs(self, names: list[str], lines: int) -> str: ...

    def main_process(self, component: str) -> ProcessRecord:
        """The component's main server process as a host pid (the postmaster, the broker)."""

    def pause(self, component: str) -> None:
        """Freeze the component; returns once it is really stopped."""

    def resume(self, component: str) -> None:
        """Undo ``pause``; harmless when it is not paused."""

    def kill(self, component: str) -> None:
        """SIGKILL the component; returns once it is gone."""

    def start(self, component: str) -> None:
        """Start a killed component again; returns once it is healthy (or raises StartTimeout)."""

    def resume_paused(self) -> list[str]:
        """Resume every paused component (``lab heal``); the ones resumed."""

    def set_memory_limit(self, component: str, limit_bytes: int, record: Callable[[dict[str, Any]], None]) -> None:
        """Cap the component's memory (the kernel OOM-kills past it). ``record`` is given what
        ``restore_memory_limit`` needs (JSON, for another process to heal) before anything changes."""

    def restore_memory_limit(self, undo: dict[str, Any]) -> None:
        """Undo ``set_memory_limit``; idempotent."""

    def oom_kills(self, undo: dict[str, Any]) -> int:
        """OOM kills counted under the limit ``set_memory_limit`` set (0 when it cannot tell)."""

    def problems(self) -> list[str]:
        """What is not as ``up`` left it: components not running, paused, or still memory-capped."""

    def kafka_flavour(self) -> str:
        """'apache' for Apache Kafka, 'tansu' for the Tansu broker (no idempotence, no CreatePartitions, ...)."""

    def proxy_flavour(self) -> str:
        """'lab.proxy' (with its protocol-aware toxics) or 'toxiproxy' (the official server)."""

    def resets_reach_clients(self) -> bool:
        """Whether a TCP RST the fault proxy sends reaches a client on the host as a RST. Not where something
        relays the connection with sockets of its own (a port forwarder): it closes the client's side with a
        FIN when the proxy's side is reset, and the client sees the connection closed, not reset."""


def _docker(*args: str, timeout_s: float) -> tuple[bool, str]:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"`docker {' '.join(args)}` gave no answer within {timeout_s:g}s"
    output = (result.stdout if result.returncode == 0 else result.stderr or result.stdout).strip()
    return result.returncode == 0, output.splitlines()[-1] if output else f"exit code {result.returncode}"


def detect(settings: Settings) -> tuple[str, str]:
    """(backend name, why) for LAB_BACKEND / --backend = auto|local|compose."""
    from .compose import images

    if settings.backend != "auto":
        return settings.backend, f"{settings.backend} was asked for"
    if shutil.which("docker") is None:
        return "local", "there is no docker command"
    ok, detail = _docker("info", "--format", "{{.ServerVersion}}", timeout_s=5)
    if not ok:
        return "local", f"no Docker engine answers ({detail})"
    if not _docker("compose", "version", timeout_s=10)[0]:
        return "local", f"Docker {detail} answers, but there is no `docker compose` (compose v2)"
    wanted = list(images().values())
    missing = [image for image in wanted if not _docker("image", "inspect", image, timeout_s=10)[0]]
    unpullable = [image for image in missing if not _docker("manifest", "inspect", image, timeout_s=15)[0]]
    if unpullable:
        return "local", f"Docker {detail} answers, but {', '.join(unpullable)} can neither be found nor pulled"
    how = "present" if not missing else "present or pullable"
    return "compose", f"Docker {detail} answers and the images are {how}"


def for_settings(settings: Settings, name: str) -> Backend:
    from .compose import ComposeBackend
    from .local import LocalBackend

    return ComposeBackend(settings) if name == "compose" else LocalBackend(settings)


def recorded(settings: Settings) -> Backend:
    """The backend the state file says is up (local when nothing is recorded)."""
    current = state_file.load(settings.state_path)
    return for_settings(settings, current.backend if current else "local")


def running(settings: Settings) -> Backend:
    """The backend of the stack that is up; a StackError when none is."""
    from ..errors import StackError

    current = state_file.load(settings.state_path)
    if current is None:
        raise StackError("the stack is not up (no state file): run `python -m lab up` first")
    return for_settings(settings, current.backend)
