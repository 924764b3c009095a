"""The Postgres server SIGKILLed and restarted under in-flight queries, again and again.

Whatever asyncpg meets while its server dies (FATAL messages on idle connections,
half-consumed protocol states, resets, refused connects during the restart), the
resilient client must raise only LabErrors, and the pool must serve again once the
server is back. This is the `postgres_restart` escape of issue 9
(``InternalClientError: cannot switch to state 11; another operation (2) is in progress``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from pathlib import Path

import pytest

from lab.clients import PostgresClient, PostgresSettings
from lab.errors import LabError
from lab.resilience import BreakerConfig, CircuitBreaker

pytestmark = [pytest.mark.integration, pytest.mark.stress]

# the escape showed in 4 of 7 postgres_restart runs (3 kills each: about 1 kill in 4): make test's 6 kills catch it
# 4 runs in 5, CI's make test-long (LAB_LONG_TESTS=1) runs 16 (make test's budget: 10 kills took 35 s)
ROUNDS = 16 if os.environ.get("LAB_LONG_TESTS") == "1" else 6
WORKERS = 24  # more than the pool: some calls wait in acquire when the server dies
ROUND_BOUND_S = 30.0  # one round (kill, `lab up`, recovery) must finish within this
QUERIES = ("SELECT 1", "SELECT pg_sleep(0.02)", "SELECT pg_sleep(0.2)")


def _postmaster_pid(stack) -> int:
    pid = stack.status()["components"]["postgres"]["pid"]
    assert pid, "the stack records no Postgres process"
    return int(pid)


async def _wait_reaped(pid: int, timeout_s: float = 10.0) -> None:
    """Until the pid is gone from /proc: while even a zombie holds it, Postgres's lock file check
    (kill(pid, 0)) says the old postmaster still runs and the restart would fail."""
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"the postmaster {pid} was not reaped within {timeout_s:g}s of SIGKILL")
        await asyncio.sleep(0.02)


def _never_opening_breaker(name: str) -> CircuitBreaker:
    """Every call reaches the driver: the breaker must not hide what the pool would raise."""
    return CircuitBreaker(name, BreakerConfig(record_exceptions=()))


async def _one_round(stack, round_no: int) -> list[BaseException]:
    client = await PostgresClient(PostgresSettings(
        stack.pg_dsn, application_name=f"server-kill-{round_no}", min_size=8, max_size=8,
        connect_timeout_s=1, acquire_timeout_s=1, command_timeout_s=1, close_timeout_s=2,
        validate_idle_after_s=0.05, validation_timeout_s=0.5),
        breaker=_never_opening_breaker(f"server-kill-{round_no}")).start()
    errors: list[BaseException] = []
    served_after_restart = asyncio.Event()
    restarted = asyncio.Event()
    stop = asyncio.Event()

    async def plain(worker: int) -> None:
        query = QUERIES[worker % len(QUERIES)]
        while not stop.is_set():
            try:
                await client.fetchval(query)
                if restarted.is_set():
                    served_after_restart.set()
            except Exception as err:  # noqa: BLE001 - what escapes is the point of the test
                errors.append(err)
                await asyncio.sleep(0.01)

    async def in_transaction() -> None:
        while not stop.is_set():
            try:
                async with client.transaction() as conn:
                    await conn.execute("SELECT pg_sleep(0.05)", timeout=1)
            except Exception as err:  # noqa: BLE001
                errors.append(err)
                await asyncio.sleep(0.01)

    workers = [asyncio.create_task(plain(i)) for i in range(WORKERS)]
    workers += [asyncio.create_task(in_transaction()) for _ in range(4)]
    try:
        pid = _postmaster_pid(stack)
        await asyncio.sleep(0.3)  # every worker is mid-call
        os.kill(pid, signal.SIGKILL)
        await _wait_reaped(pid)
        await asyncio.to_thread(stack.run, "up")
        restarted.set()
        await asyncio.wait_for(served_after_restart.wait(), 10)
        await asyncio.sleep(0.3)  # the workers meet the restarted server
    finally:
        stop.set()
        done, pending = await asyncio.wait(workers, timeout=5)
        for task in pending:
            task.cancel()
        await client.close()
    assert not pending, f"{len(pending)} workers did not return within 5 s of the stop"
    return errors


async def test_every_error_while_the_server_is_killed_and_restarted_is_a_lab_error(stack):
    escaped: collections.Counter[str] = collections.Counter()
    translated: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    for round_no in range(ROUNDS):
        errors = await asyncio.wait_for(_one_round(stack, round_no), ROUND_BOUND_S)
        for err in errors:
            name = f"{type(err).__module__}.{type(err).__name__}"
            if isinstance(err, LabError):
                translated[name] += 1
            else:
                escaped[name] += 1
                examples.setdefault(name, str(err))
    assert sum(translated.values()) >= ROUNDS, f"the kills were not noticed: {dict(translated)}"
    assert not escaped, (f"raw driver errors escaped the client in {ROUNDS} kills: {dict(escaped)}; "
                         f"examples {examples}; translated: {dict(translated)}")
