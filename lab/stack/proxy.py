"""The local fault proxy: ``python -m lab.proxy``, populated with the postgres and kafka proxies.

Runs as the lab's OS user when the lab runs as root (see ``runas``); it reads
its config on stdin, so it needs no access to the lab's private state directory.
"""

from __future__ import annotations

import pwd
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from ..config import HOST, Settings
from ..files import write_private
from ..services import SERVICES
from . import health, procs, runas

PROXIES = SERVICES  # one proxy per service, named as the service


class LocalProxy:
    name = "proxy"
    stop_signal = signal.SIGTERM

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config: Path = settings.state_path / "proxy.json"
        self.user: str | None = None
        self.env: dict[str, str] = {}
        self.python, self.cwd = sys.executable, Path(__file__).resolve().parents[2]

    def ports(self) -> list[int]:
        s = self.settings
        return [s.proxy_api_port, s.pg_proxy_port, s.kafka_proxy_port]

    def prepare(self) -> None:
        s = self.settings
        self.user = runas.lab_user(s)
        self.python, self.env, self.cwd = runas.python_for(self.user, Path(__file__).resolve().parents[2])
        write_private(self.config, health.proxy_config(s).encode())
        if self.user is not None:
            shutil.chown(self.config, self.user, pwd.getpwnam(self.user).pw_gid)

    def start(self, log: Path) -> procs.ProcessRecord:
        # The API is unauthenticated: without the flag any local user could make the
        # proxy listen on every interface in front of Postgres (issue 10).
        argv = [self.python, "-m", "lab.proxy", "-host", HOST, "-port", str(self.settings.proxy_api_port),
                "-config", "/dev/stdin", "-allow-remote-listen=false"]
        _proc, record = procs.spawn(argv, log, cwd=self.cwd, user=self.user, env=runas.child_env(self.env),
                                    stdin=self.config)
        return record

    def info(self) -> dict[str, Any]:
        return {"config": str(self.config), "python": self.python, "os_user": self.user or ""}

    async def after_start(self) -> None:
        return None

    async def probe(self) -> str:
        return await health.proxy_ready(self.settings.proxy_api_port, PROXIES)

    def endpoints(self) -> dict[str, Any]:
        return {"endpoint": self.settings.proxy_url, "upstream": ""}
