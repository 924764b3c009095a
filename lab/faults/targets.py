"""Finding what a fault acts on: a component's process (local) or service (compose)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from ..config import Settings
from ..stack import procs
from ..stack import state as state_file
from .base import FaultError


def settings_env(settings: Settings) -> dict[str, str]:
    """The LAB_* values that rebuild these settings in another process (for heal)."""
    return {
        "LAB_STATE_DIR": str(settings.state_path), "LAB_PROXY_API_PORT": str(settings.proxy_api_port),
        "LAB_PG_PROXY_PORT": str(settings.pg_proxy_port), "LAB_KAFKA_PROXY_PORT": str(settings.kafka_proxy_port),
        "LAB_PG_PORT": str(settings.pg_port), "LAB_KAFKA_PORT": str(settings.kafka_port),
    }


def settings_from(env: dict[str, str]) -> Settings:
    return Settings.from_env({**os.environ, **env})


def backend_name(settings: Settings) -> str:
    current = state_file.load(settings.state_path)
    if current is None:
        raise FaultError("the stack is not up (no state file): run `python -m lab up` first")
    return current.backend


def component_process(settings: Settings, name: str) -> procs.ProcessRecord:
    current = state_file.load(settings.state_path)
    entry = current.components.get(name) if current else None
    if entry is None or entry.process is None or not procs.is_ours(entry.process):
        raise FaultError(f"component {name!r} is not running under this lab (run `python -m lab up`)")
    return entry.process


def owner(pid: int) -> str:
    return pwd.getpwuid(Path(f"/proc/{pid}").stat().st_uid).pw_name


def owner_ids(pid: int) -> tuple[int, int]:
    """(uid, gid) of ``pid``: numeric, since a container's user may not exist on the host."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = int(next(line.split()[1] for line in status if line.startswith("Uid:")))
    gid = int(next(line.split()[1] for line in status if line.startswith("Gid:")))
    return uid, gid


def container_id(component: str) -> str:
    """The compose container of ``component`` (project chaoslab)."""
    import subprocess

    from ..stack.compose import SERVICES, compose_command

    result = subprocess.run(compose_command("ps", "-q", SERVICES[component]), capture_output=True, text=True,
                            timeout=30)
    container = result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else ""
    if not container:
        raise FaultError(f"no running compose container for {component!r} (is `python -m lab up --backend "
                         f"compose` up?)")
    return container


def inspect(container: str, template: str) -> str:
    import subprocess

    result = subprocess.run(["docker", "inspect", "-f", template, container], capture_output=True, text=True,
                            timeout=30)
    if result.returncode != 0:
        raise FaultError(f"docker inspect {container} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def target_pid(settings: Settings, component: str) -> procs.ProcessRecord:
    """The component's main process as a host pid: our own process locally, the container's on compose."""
    if backend_name(settings) == "local":
        return component_process(settings, component)
    pid = int(inspect(container_id(component), "{{.State.Pid}}"))
    if pid <= 0:
        raise FaultError(f"the {component} container is not running")
    return procs.ProcessRecord(pid, procs.start_ticks(pid) or 0, cmdline(pid).split(" ")[0])


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Postgres backends of the postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
