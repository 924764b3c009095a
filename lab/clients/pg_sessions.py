"""Ending Postgres sessions by application name: the one place that calls pg_terminate_backend.

Used by the resilient client (its own sessions, after a forced close) and by the faults (the
sessions of a flood or a hungry query, at heal). pg_terminate_backend only signals a backend:
callers that must see the sessions gone repeat it until it signals none.
"""

from __future__ import annotations

from typing import Sequence

import asyncpg

from .pg_errors import translated

__all__ = ["terminate_sessions"]


async def terminate_sessions(conn: asyncpg.Connection, application_name: str, timeout_s: float,
                             pids: Sequence[int] | None = None) -> int:
    """Signal every session named ``application_name`` (only those among ``pids``, if given) except ``conn``'s
    own; returns how many were signalled. Driver errors arrive translated by the client's table."""
    with translated(f"ending the sessions named {application_name!r}"):
        signalled = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 "
            "AND ($2::int[] IS NULL OR pid = ANY($2::int[])) AND pid <> pg_backend_pid()",
            application_name, None if pids is None else list(pids), timeout=timeout_s)
    return int(signalled or 0)
