"""An isolated lab for tests: its own state dir and free ports, driven through `python -m lab`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from lab.stack import procs

ROOT = Path(__file__).resolve().parent.parent


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


class LabEnv:
    """``backend``: local by default; the compose tests pass LAB_TEST_BACKEND=compose to the chaos tests."""

    def __init__(self, state_dir: Path, backend: str = "local") -> None:
        api, pg_proxy, kafka_proxy, pg, kafka = free_ports(5)
        self.ports = {"api": api, "pg_proxy": pg_proxy, "kafka_proxy": kafka_proxy, "pg": pg, "kafka": kafka}
        self.state_dir = state_dir
        self.env = {
            **os.environ,
            "LAB_STATE_DIR": str(state_dir),
            "LAB_PROXY_API_PORT": str(api),
            "LAB_PG_PROXY_PORT": str(pg_proxy),
            "LAB_KAFKA_PROXY_PORT": str(kafka_proxy),
            "LAB_PG_PORT": str(pg),
            "LAB_KAFKA_PORT": str(kafka),
            "LAB_BACKEND": backend,
        }
        self.backend = backend

    def run(self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess:
        env = {**self.env, **(extra_env or {})}
        result = subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def status(self) -> dict:
        return json.loads(self.run("status", "--json").stdout)

    @property
    def settings(self):  # type: ignore[no-untyped-def]
        """The lab's own Settings for this environment: the one owner of its DSNs and password."""
        from lab.config import Settings

        return Settings.from_env(self.env)

    @property
    def pg_dsn(self) -> str:
        return self.settings.pg_dsn

    @property
    def pg_direct_dsn(self) -> str:
        return self.settings.pg_direct_dsn

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['kafka_proxy']}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def all_ports(self) -> list[int]:
        return list(self.ports.values())


def listening(port: int) -> bool:
    from lab.stack.procs import listening_inodes

    return bool(listening_inodes(port))


def lab_processes(state_dir: Path) -> list[str]:
    """Command lines of live (non-zombie) processes that mention this lab's state dir or ports."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        cmdline = procs.cmdline(int(pid_dir.name))
        if procs.state_letter(int(pid_dir.name)) not in (None, "Z") and str(state_dir) in cmdline:
            found.append(cmdline)
    return found
