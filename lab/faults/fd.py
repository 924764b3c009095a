"""File-descriptor exhaustion: the server's limit, a connection flood, and the client's own limit."""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

import asyncpg

from ..config import Settings
from ..errors import ClientError
from ..stack import limits
from ..stack.backend import running
from . import pgadmin
from .base import Fault, FaultError, positive
from .ledger import FaultLedger
from .network import disable_proxy, enable_proxy
from .process import recorded_settings

__all__ = ["FLOOD_APPLICATION", "ClientFdLimit", "ConnectionFlood", "ServerFdLimit"]

FLOOD_APPLICATION = "chaoslab-flood"


class ServerFdLimit(Fault):
    """Lower the component's soft RLIMIT_NOFILE (its children too): accept() fails with EMFILE."""

    kind = "fd_limit"

    def __init__(self, ledger: FaultLedger, settings: Settings, component: str, nofile: int) -> None:
        positive("nofile", nofile)
        super().__init__(ledger)
        self.settings, self.component, self.nofile = settings, component, nofile
        self.main = running(settings).main_process(component)  # a container's main process on compose
        self.previous_soft = limits.nofile(self.main.pid)[0]

    def key(self) -> str:
        return f"fd_limit:{self.component}"

    def heal_data(self) -> dict[str, Any]:
        return {"process": self.main.to_json(), "previous_soft": self.previous_soft}

    async def _inject(self) -> None:
        await asyncio.to_thread(limits.lower_nofile, self.main, self.nofile)

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        await asyncio.to_thread(limits.restore_nofile, data)


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

    def key(self) -> str:
        return "flood:postgres"

    def heal_data(self) -> dict[str, Any]:
        return {"settings": self.settings.to_env(), "drop_via": self.drop_via}

    async def _inject(self) -> dict[str, Any]:
        first = await pgadmin.connect(self.settings, FLOOD_APPLICATION)
        self.connections.append(first)
        if self.drop_via:
            await disable_proxy(self.drop_via, "postgres")
            await _settle(first)
        limit = int(await first.fetchval("SHOW max_connections"))
        reserved = int(await first.fetchval("SHOW superuser_reserved_connections"))
        used = int(await first.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))
        # lab is a superuser: it may use the reserved slots too, so take them all
        wanted = max(0, limit - used - self.leave_free)
        for _ in range(wanted):
            try:
                self.connections.append(await pgadmin.connect(self.settings, FLOOD_APPLICATION))
            except ClientError:  # too many clients: the flood is complete
                break
        if self.drop_via:
            await enable_proxy(self.drop_via, "postgres")
        return {"opened": len(self.connections), "max_connections": limit, "reserved": reserved}

    async def heal(self) -> None:
        connections, self.connections = self.connections, []
        await asyncio.gather(*(c.close(timeout=2) for c in connections), return_exceptions=True)
        await super().heal()

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        if data.get("drop_via"):
            await enable_proxy(data["drop_via"], "postgres")
        await pgadmin.end_sessions(recorded_settings(data), FLOOD_APPLICATION)


async def _settle(conn: asyncpg.Connection, max_s: float = 2.0) -> None:
    """Wait until no client session other than the flood's is left (the dropped ones have ended)."""
    deadline = asyncio.get_running_loop().time() + max_s
    while asyncio.get_running_loop().time() < deadline:
        others = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                     "AND application_name <> $1", FLOOD_APPLICATION)
        if others == 0:
            return
        await asyncio.sleep(0.02)


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
        return f"client_fd_limit:{os.getpid()}"

    def heal_data(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "soft": self.previous[0], "hard": self.previous[1], "drop_via": self.drop_via}

    async def _inject(self) -> None:
        if not self.drop_via:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.STDIO, self.previous[1]))
            return
        await disable_proxy(self.drop_via, "postgres")
        await asyncio.sleep(0.2)  # the clients see their connections close and release the sockets
        reader, writer = await asyncio.open_connection(*_host_port(self.drop_via))  # opened before the limit
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.STDIO, self.previous[1]))
            await _raw_enable(reader, writer, "postgres")
        finally:
            writer.close()

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        if data["pid"] == os.getpid():
            resource.setrlimit(resource.RLIMIT_NOFILE, (data["soft"], data["hard"]))
        # another process's own limit died with it: nothing to undo
        if data.get("drop_via"):
            await enable_proxy(data["drop_via"], "postgres")


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
