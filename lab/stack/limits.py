"""Resource limits on host processes: RLIMIT_NOFILE through prlimit, memory through a cgroup (v1 or v2).

Both backends' servers are host processes (a container's are too, seen from the
host), so these work on either; each returns JSON-serialisable undo data so that
another process (``lab heal``) can restore what a killed run left.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ..errors import StackError
from . import procs
from .procs import ProcessRecord

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "chaoslab-"  # the capped cgroups the lab creates


def owner_ids(pid: int) -> tuple[int, int]:
    """(uid, gid) of ``pid``: numeric, since a container's user may not exist on the host."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        raise StackError(f"process {pid} is gone") from None
    uid = int(next(line.split()[1] for line in status if line.startswith("Uid:")))
    gid = int(next(line.split()[1] for line in status if line.startswith("Gid:")))
    return uid, gid


def _as_owner(pid: int, argv: list[str]) -> list[str]:
    uid, gid = owner_ids(pid)
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]


def nofile(pid: int, soft: int | None = None) -> tuple[int, int]:
    """Read (and with ``soft``, first set) RLIMIT_NOFILE of ``pid``, acting as the process's own user.

    Root may lack CAP_SYS_RESOURCE over another user's process here; the owner can always
    lower its soft limit and raise it again up to the unchanged hard limit.
    """
    if soft is not None:
        hard = nofile(pid)[1]
        _prlimit(pid, [f"--nofile={soft}:{hard}"], f"setting the fd limit of pid {pid} to {soft}")
    out = _prlimit(pid, ["--nofile", "--raw", "--noheadings", "--output", "SOFT,HARD"],
                   f"reading the fd limit of pid {pid}")
    soft_text, hard_text = out.split()
    return int(soft_text), int(hard_text)


def _prlimit(pid: int, args: list[str], what: str) -> str:
    result = subprocess.run(_as_owner(pid, ["prlimit", "--pid", str(pid), *args]), capture_output=True,
                            text=True, timeout=10)
    if result.returncode != 0:
        raise StackError(f"{what} as its owner failed: {result.stderr.strip() or result.returncode}")
    return result.stdout


def lower_nofile(main: ProcessRecord, soft: int) -> None:
    """Lower the soft fd limit of ``main`` and its children (accept() then fails with EMFILE)."""
    for pid in [main.pid] + procs.children(main.pid):
        try:
            nofile(pid, soft)
        except StackError:
            if pid == main.pid:
                raise  # a child that exited meanwhile does not matter


def restore_nofile(undo: dict[str, Any]) -> None:
    """Give ``main`` and its current children their previous soft fd limit back (nothing if it is gone)."""
    main = ProcessRecord.from_json(undo["process"])
    if not procs.is_ours(main):
        return
    for pid in [main.pid] + procs.children(main.pid):
        try:
            nofile(pid, undo["previous_soft"])
        except StackError:
            continue  # exited meanwhile


def cgroup_of(pid: int) -> tuple[str, Path]:
    """('v1'|'v2', the memory cgroup directory ``pid`` is in)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        raise StackError(f"process {pid} is gone") from None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return "v1", CGROUP_ROOT / "memory" / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return "v2", CGROUP_ROOT / line[3:].lstrip("/")
    raise StackError(f"no memory cgroup controller for pid {pid}")


def memory_limit_bytes(pid: int) -> int:
    """The memory limit of the cgroup ``pid`` is in, as the kernel enforces it (a huge number means none)."""
    version, group = cgroup_of(pid)
    text = (group / ("memory.limit_in_bytes" if version == "v1" else "memory.max")).read_text().strip()
    return 2 ** 63 - 1 if text == "max" else int(text)


def capped_group_home(version: str, parent: Path, root: Path = CGROUP_ROOT) -> Path:
    """Where a capped child cgroup for a process in ``parent`` can be made.

    v1: beside the process, under ``parent`` (any memory cgroup may have children). v2: under the nearest cgroup,
    from ``parent`` up to ``root``, whose ``cgroup.subtree_control`` already gives its children the memory controller;
    v2 refuses to turn a controller on under a cgroup that holds processes (its "no internal processes" rule), which
    a systemd service's or a container's own cgroup does. Nothing is written here: turning controllers on would
    outlive the run. A StackError if no such cgroup exists."""
    if version == "v1":
        return parent
    for candidate in (parent, *parent.parents):
        try:
            if "memory" in (candidate / "cgroup.subtree_control").read_text().split():
                return candidate
        except OSError:
            pass  # not a cgroup directory, or not readable: look further up
        if candidate == root:
            break
    raise StackError(f"no cgroup from {parent} up to {root} gives its children the memory controller "
                     "(cgroup v2: no cgroup.subtree_control there names 'memory'), so memory cannot be capped")


def cap_memory(main: ProcessRecord, limit_bytes: int, record: Callable[[dict[str, Any]], None]) -> None:
    """Move ``main`` and its children into a new cgroup limited to ``limit_bytes`` (see ``capped_group_home``);
    ``record`` gets the undo data first. On an error the new cgroup is removed, the processes stay put."""
    version, parent = cgroup_of(main.pid)
    group = capped_group_home(version, parent) / f"{CGROUP_PREFIX}{uuid.uuid4().hex[:8]}"
    undo = {"version": version, "parent": str(parent), "group": str(group)}
    record(undo)
    try:
        group.mkdir()
    except OSError as err:
        raise StackError(f"cannot create cgroup {group}: {err.strerror}") from None
    limit_file = group / ("memory.limit_in_bytes" if version == "v1" else "memory.max")
    try:
        limit_file.write_text(str(limit_bytes))
    except OSError as err:
        uncap_memory(undo)
        raise StackError(f"cannot set the memory limit {limit_file}: {err.strerror}") from None
    if version == "v1" and (group / "memory.memsw.limit_in_bytes").exists():
        try:
            (group / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        except OSError:
            pass  # swap accounting off: the memory limit alone applies
    for pid in [main.pid] + procs.children(main.pid):
        try:
            (group / "cgroup.procs").write_text(str(pid))
        except OSError:
            continue  # exited meanwhile


def uncap_memory(undo: dict[str, Any], timeout_s: float = 5.0) -> None:
    """Move every process back to the parent cgroup and remove the capped one; idempotent."""
    group, parent = Path(undo["group"]), Path(undo["parent"])
    deadline = time.monotonic() + timeout_s
    while group.exists():
        try:
            pids = (group / "cgroup.procs").read_text().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                (parent / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # exited meanwhile
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise StackError(f"cannot remove cgroup {group}: processes keep arriving") from None
            time.sleep(0.05)  # forked into it meanwhile: move again


def oom_kills(version: str, group: Path) -> int:
    """The kernel's OOM-kill count in a memory cgroup (0 when it is gone or does not say)."""
    try:
        text = (group / ("memory.oom_control" if version == "v1" else "memory.events")).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            return int(value)
    return 0


def host_memory_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise StackError("cannot read MemTotal from /proc/meminfo")
