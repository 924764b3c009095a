"""The faults' own Postgres sessions (floods, hungry queries, and ending them at heal): direct, bounded,
translated by the client's one table, so a server dying under a fault never crashes a heal."""

from __future__ import annotations

import asyncpg

from ..clients.pg_errors import Phase, translated
from ..config import Settings
from ..errors import ClientError

TIMEOUT_S = 5.0


async def connect(settings: Settings, application_name: str, timeout_s: float = TIMEOUT_S) -> asyncpg.Connection:
    """A direct session (not through the proxy) named ``application_name``; DatabaseUnavailable if refused."""
    with translated(f"connecting directly to {settings.pg_port} for the lab", Phase.CONNECT):
        return await asyncpg.connect(settings.pg_direct_dsn, timeout=timeout_s,
                                     server_settings={"application_name": application_name})


async def end_sessions(settings: Settings, application_name: str) -> bool:
    """pg_terminate_backend every session named ``application_name``. False when Postgres cannot be reached:
    then there is nothing to end (a crashed or restarting server has ended them itself)."""
    try:
        conn = await connect(settings, "chaoslab-heal")
    except ClientError:
        return False
    try:
        with translated("ending the lab's sessions"):
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                               application_name, timeout=TIMEOUT_S)
    except ClientError:
        return False
    finally:
        conn.terminate()
    return True
