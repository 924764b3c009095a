"""The faults' own Postgres sessions (floods, hungry queries, and ending them at heal): direct, bounded,
translated by the client's one table, so a server dying under a fault never crashes a heal."""

from __future__ import annotations

import asyncio

import asyncpg

from ..clients.pg_errors import Phase, translated
from ..clients.pg_sessions import terminate_sessions
from ..config import Settings
from ..errors import ClientError, FaultError

TIMEOUT_S = 5.0


async def connect(settings: Settings, application_name: str, timeout_s: float = TIMEOUT_S) -> asyncpg.Connection:
    """A direct session (not through the proxy) named ``application_name``; DatabaseUnavailable if refused."""
    with translated(f"connecting directly to {settings.pg_port} for the lab", Phase.CONNECT):
        return await asyncpg.connect(settings.pg_direct_dsn, timeout=timeout_s,
                                     server_settings={"application_name": application_name})


async def end_sessions(settings: Settings, application_name: str) -> bool:
    """End every session named ``application_name`` and return once none is left (bounded: FaultError past
    TIMEOUT_S). pg_terminate_backend only signals a backend, so it is repeated until pg_stat_activity shows
    none: also one a killed run was still opening. False when Postgres cannot be reached: then there is
    nothing to end (a crashed or restarting server has ended them itself)."""
    try:
        conn = await connect(settings, "chaoslab-heal")
    except ClientError:
        return False
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    try:
        while True:
            left = await terminate_sessions(conn, application_name, TIMEOUT_S)
            if not left:
                return True
            if asyncio.get_running_loop().time() > deadline:
                raise FaultError(f"{left} sessions named {application_name!r} outlived pg_terminate_backend for "
                                 f"{TIMEOUT_S:g}s")
            await asyncio.sleep(0.05)
    except ClientError:
        return False
    finally:
        conn.terminate()
