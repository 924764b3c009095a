"""Processes the lab starts: spawn detached, recognise later, stop exactly, find port holders.

A pid alone is not proof: after a crash the number may belong to another
process. The lab records each process's start time (field 22 of
/proc/PID/stat) and only treats a pid as its own while that still matches.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import PortInUse


@dataclasses.dataclass(frozen=True)
class ProcessRecord:
    """What the state file keeps about a process the lab started."""

    pid: int
    start_ticks: int
    argv0: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ProcessRecord":
        return cls(int(data["pid"]), int(data["start_ticks"]), str(data["argv0"]))


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, from the state on (field 3 of proc(5) is [0]);
    None once the process is gone. The one place that parses that file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields if len(fields) >= 20 else None


def start_ticks(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def state_letter(pid: int) -> str | None:
    """The kernel's one-letter state: R, S, T (stopped), Z (zombie)..."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def parent_pid(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def is_ours(record: ProcessRecord) -> bool:
    """True while the recorded process is alive (not a zombie) and is the one we started."""
    ticks = start_ticks(record.pid)
    return ticks == record.start_ticks and state_letter(record.pid) != "Z"


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
          user: str | None = None, cwd: Path | None = None,
          stdin: Path | None = None) -> tuple["subprocess.Popen[bytes]", ProcessRecord]:
    """Start ``argv`` in its own session (it outlives this command), output to ``log_path`` (0600).

    The log is opened here and inherited, so a component running as another
    user writes it without being able to open the lab's private log directory;
    ``stdin`` (a file) is passed the same way.
    """
    from ..files import private_log

    private_log(log_path)
    with open(log_path, "ab") as log, open(stdin or os.devnull, "rb") as source:
        proc = subprocess.Popen(
            list(argv), stdin=source, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, user=user, group=_group_of(user), extra_groups=[] if user else None,
            cwd=cwd,
        )
    ticks = None
    for _ in range(50):
        ticks = start_ticks(proc.pid)
        if ticks is not None:
            break
        time.sleep(0.001)
    return proc, ProcessRecord(proc.pid, ticks or 0, str(argv[0]))


def _group_of(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


def stop(record: ProcessRecord, sig: int = signal.SIGTERM, timeout_s: float = 5.0) -> bool:
    """Signal our process, wait for it to exit, SIGKILL it past ``timeout_s``. True if it was running."""
    if not is_ours(record):
        return False
    try:
        if state_letter(record.pid) == "T":
            os.kill(record.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    if not wait_gone(record, timeout_s):
        try:
            os.kill(record.pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
        wait_gone(record, 5.0)
    return True


def wait_gone(record: ProcessRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_ours(record):
            return True
        time.sleep(0.01)
    _reap(record.pid)
    return not is_ours(record)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def port_holder(port: int) -> str:
    """'pid 123 (postgres -D ...)' for the process listening on ``port``, as well as can be told."""
    inodes = listening_inodes(port)
    if inodes:
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                for fd in (pid_dir / "fd").iterdir():
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                        return f"pid {pid_dir.name} ({cmdline.strip()[:120]})"
            except OSError:
                continue
    return "another process (its owner could not be identified)"


def require_free(port: int) -> None:
    if not port_is_free(port):
        raise PortInUse(port, port_holder(port))


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (a postmaster's backends), host pids."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    """The process's command line ('' once it is gone); a Postgres backend's shows its title."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def record_of(pid: int) -> ProcessRecord:
    """A record of a running process the lab did not spawn itself (a container's main process)."""
    return ProcessRecord(pid, start_ticks(pid) or 0, cmdline(pid).split(" ")[0])
