"""The local fault proxy: ``python -m lab.proxy``, populated with the postgres and kafka proxies."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from ..config import HOST, Settings
from . import health, procs

PROXIES = ("postgres", "kafka")


class LocalProxy:
    name = "proxy"
    stop_signal = signal.SIGTERM

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config: Path = settings.state_path / "proxy.json"

    def ports(self) -> list[int]:
        s = self.settings
        return [s.proxy_api_port, s.pg_proxy_port, s.kafka_proxy_port]

    def prepare(self) -> None:
        s = self.settings
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(health.proxy_config(s.pg_proxy_port, s.pg_port, s.kafka_proxy_port, s.kafka_port))

    def start(self, log: Path) -> procs.ProcessRecord:
        # The API is unauthenticated: without the flag any local user could make the
        # proxy listen on every interface in front of Postgres (issue 10).
        argv = [sys.executable, "-m", "lab.proxy", "-host", HOST, "-port", str(self.settings.proxy_api_port),
                "-config", str(self.config), "-allow-remote-listen=false"]
        _proc, record = procs.spawn(argv, log, cwd=Path(__file__).resolve().parents[2])
        return record

    def info(self) -> dict:
        return {"config": str(self.config)}

    async def after_start(self) -> None:
        return None

    async def probe(self) -> str:
        return await health.proxy_ready(self.settings.proxy_api_port, PROXIES)

    def endpoints(self) -> dict:
        return {"endpoint": self.settings.proxy_url, "upstream": ""}
