"""File-descriptor exhaustion: the server's limit, a connection flood, and the client's own limit."""

from __future__ import annotations

import asyncio
import resource
import subprocess
from typing import Any

import asyncpg

from ..config import HOST, PG_DATABASE, PG_PASSWORD, PG_USER, Settings
from ..stack import procs
from . import targets
from .base import Fault, FaultError, positive, undo_for
from .ledger import FaultLedger

FLOOD_APPLICATION = "chaoslab-flood"


def as_owner(pid: int, argv: list[str]) -> list[str]:
    """``argv`` run with the uid/gid of ``pid`` (numeric: a container's user may not exist on the host)."""
    uid, gid = targets.owner_ids(pid)
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]


def _prlimit_as_owner(pid: int, soft: int | None = None) -> tuple[int, int]:
    """Read (and with ``soft``, set) RLIMIT_NOFILE of ``pid`` as the process's own user.

    Root cannot touch another user's limits here (no CAP_SYS_RESOURCE); the owner can
    lower its soft limit and raise it back up to the unchanged hard limit.
    """
    try:
        command = as_owner(pid, ["prlimit", "--pid", str(pid), "--nofile", "--raw", "--noheadings",
                                 "--output", "SOFT,HARD"])
    except OSError:
        raise FaultError(f"process {pid} is gone") from None
    if soft is not None:
        hard = _prlimit_as_owner(pid)[1]
        result = subprocess.run(as_owner(pid, ["prlimit", "--pid", str(pid), f"--nofile={soft}:{hard}"]),
                                capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise FaultError(f"prlimit on pid {pid} as its owner failed: {result.stderr.strip()}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise FaultError(f"reading the fd limit of pid {pid} as its owner failed: {result.stderr.strip()}")
    soft_text, hard_text = result.stdout.split()
    return int(soft_text), int(hard_text)


class ServerFdLimit(Fault):
    """Lower the component's soft RLIMIT_NOFILE (its children inherit it): accept() fails with EMFILE."""

    kind = "fd_limit"

    def __init__(self, ledger: FaultLedger, settings: Settings, component: str, nofile: int) -> None:
        positive("nofile", nofile)
        super().__init__(ledger)
        self.settings, self.component, self.nofile = settings, component, nofile
        self.record = targets.target_pid(settings, component)  # a container's main process on compose

    def key(self) -> str:
        return f"fd_limit:{self.component}"

    def undo(self) -> dict[str, Any]:
        return {"process": self.record.to_json(), "pids": [self.record.pid], "previous_soft": None}

    async def _inject(self) -> dict[str, Any]:
        pids = [self.record.pid] + targets.children(self.record.pid)
        previous = _prlimit_as_owner(self.record.pid)[0]
        self.ledger.update(self.entry, undo={**self.undo(), "pids": pids, "previous_soft": previous})
        for pid in pids:
            try:
                _prlimit_as_owner(pid, self.nofile)
            except FaultError:
                if pid == self.record.pid:
                    raise  # a backend that exited meanwhile does not matter
        return {"pids": pids, "previous_soft": previous}


@undo_for("fd_limit")
async def _restore_fd_limit(undo: dict[str, Any]) -> None:
    record = procs.ProcessRecord.from_json(undo["process"])
    previous = undo.get("previous_soft")
    if previous is None or not procs.is_ours(record):
        return
    for pid in [record.pid] + targets.children(record.pid):
        try:
            _prlimit_as_owner(pid, previous)
        except (FaultError, OSError):
            continue  # gone meanwhile


async def _disable(api_url: str, proxy: str) -> None:
    from ..proxy.client import ToxiproxyClient

    await ToxiproxyClient(api_url).disable(proxy)


async def _enable(api_url: str, proxy: str) -> None:
    from ..proxy.client import ToxiproxyClient

    await ToxiproxyClient(api_url).enable(proxy)


class ConnectionFlood(Fault):
    """Open connections (directly, not through the proxy) until Postgres's max_connections is reached.

    With ``drop_via`` (the proxy API URL), the clients' connections through the
    ``postgres`` proxy are dropped first and their server sessions allowed to end,
    so the flood takes their slots too: every reconnect then meets "too many clients".
    """

    kind = "flood"

    def __init__(self, ledger: FaultLedger, settings: Settings, leave_free: int = 0,
                 drop_via: str | None = None) -> None:
        super().__init__(ledger)
        self.settings, self.leave_free, self.drop_via = settings, leave_free, drop_via
        self.connections: list[asyncpg.Connection] = []

    def _dsn(self) -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.settings.pg_port}/{PG_DATABASE}"

    def key(self) -> str:
        return "flood:postgres"

    def undo(self) -> dict[str, Any]:
        return {"dsn": self._dsn(), "drop_via": self.drop_via}

    async def _inject(self) -> dict[str, Any]:
        first = await asyncpg.connect(self._dsn(), timeout=5, server_settings={"application_name": FLOOD_APPLICATION})
        self.connections.append(first)
        if self.drop_via:
            await _disable(self.drop_via, "postgres")
            await _settle(first)
        limit = int(await first.fetchval("SHOW max_connections"))
        reserved = int(await first.fetchval("SHOW superuser_reserved_connections"))
        used = int(await first.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))
        # lab is a superuser: it may use the reserved slots too, so take them all
        wanted = max(0, limit - used - self.leave_free)
        for _ in range(wanted):
            try:
                self.connections.append(await asyncpg.connect(
                    self._dsn(), timeout=5, server_settings={"application_name": FLOOD_APPLICATION}))
            except (asyncpg.TooManyConnectionsError, asyncpg.PostgresError, OSError):
                break
        if self.drop_via:
            await _enable(self.drop_via, "postgres")
        return {"opened": len(self.connections), "max_connections": limit, "reserved": reserved}

    async def heal(self) -> None:
        connections, self.connections = self.connections, []
        await asyncio.gather(*(c.close(timeout=2) for c in connections), return_exceptions=True)
        await super().heal()


async def _settle(conn: asyncpg.Connection, max_s: float = 2.0) -> None:
    """Wait until no client session other than the flood's is left (the dropped ones have ended)."""
    deadline = asyncio.get_running_loop().time() + max_s
    while asyncio.get_running_loop().time() < deadline:
        others = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                     "AND application_name <> $1", FLOOD_APPLICATION)
        if others == 0:
            return
        await asyncio.sleep(0.02)


@undo_for("flood")
async def _end_flood(undo: dict[str, Any]) -> None:
    if undo.get("drop_via"):
        await _enable(undo["drop_via"], "postgres")
    try:
        conn = await asyncpg.connect(undo["dsn"], timeout=5)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return  # nothing reachable to clean; the flood died with its process
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                           FLOOD_APPLICATION)
    finally:
        await conn.close()


class ClientFdLimit(Fault):
    """This process may open no new descriptor (EMFILE): its soft RLIMIT_NOFILE drops to 3 (stdio).

    The limit applies to descriptor *numbers*, so anything above stdio fails,
    whatever closes meanwhile. With ``drop_via``, the connections through the
    ``postgres`` proxy are dropped first and the proxy re-enabled (over an API
    connection opened beforehand) once the limit is in place: every reconnect meets EMFILE.
    """

    kind = "client_fd_limit"
    STDIO = 3

    def __init__(self, ledger: FaultLedger, drop_via: str | None = None) -> None:
        super().__init__(ledger)
        self.drop_via = drop_via
        self.previous = resource.getrlimit(resource.RLIMIT_NOFILE)

    def key(self) -> str:
        import os

        return f"client_fd_limit:{os.getpid()}"

    def undo(self) -> dict[str, Any]:
        import os

        return {"pid": os.getpid(), "soft": self.previous[0], "hard": self.previous[1], "drop_via": self.drop_via}

    async def _inject(self) -> None:
        if not self.drop_via:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.STDIO, self.previous[1]))
            return
        await _disable(self.drop_via, "postgres")
        await asyncio.sleep(0.2)  # the clients see their connections close and release the sockets
        reader, writer = await asyncio.open_connection(*_host_port(self.drop_via))  # opened before the limit
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.STDIO, self.previous[1]))
            await _raw_enable(reader, writer, "postgres")
        finally:
            writer.close()


def _host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 8474


async def _raw_enable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proxy: str) -> None:
    """PATCH enabled=true over an already open connection (no new descriptor needed)."""
    body = b'{"enabled":true}'
    writer.write(f"PATCH /proxies/{proxy} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    status = await asyncio.wait_for(reader.readline(), 5)
    if b" 200 " not in status:
        raise FaultError(f"re-enabling proxy {proxy} failed: {status!r}")


@undo_for("client_fd_limit")
async def _restore_client_limit(undo: dict[str, Any]) -> None:
    import os

    if undo["pid"] == os.getpid():
        resource.setrlimit(resource.RLIMIT_NOFILE, (undo["soft"], undo["hard"]))
    # another process's own limit died with it: nothing to undo
    if undo.get("drop_via"):
        await _enable(undo["drop_via"], "postgres")
