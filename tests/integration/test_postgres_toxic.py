"""The postgres toxic (issue 15), from real asyncpg through lab.proxy to the real server.

Each test checks what the client sees (the exception class asyncpg maps the SQLSTATE
to), that the session is still usable where the fault leaves it usable, and, looking
through a direct connection, what the server really did.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg
import pytest

from .conftest import direct_dsn

pytestmark = pytest.mark.integration

CALL_S = 5  # bound on every client call: a hang fails the test, it does not stall it


async def connect(stack, **kwargs) -> asyncpg.Connection:
    return await asyncio.wait_for(asyncpg.connect(stack.pg_dsn, **kwargs), CALL_S)


async def add(proxy, name: str, **attributes) -> None:
    await proxy.add_toxic("postgres", "postgres", name=name, attributes=attributes)


async def test_matching_statements_fail_with_the_sqlstate_others_pass(stack, proxy):
    conn = await connect(stack)
    try:
        await add(proxy, "ser", pattern="lab_marker", sqlstate="40001")
        with pytest.raises(asyncpg.SerializationError) as failed:
            await asyncio.wait_for(conn.fetchval("SELECT 'lab_marker'"), CALL_S)  # extended protocol
        assert failed.value.sqlstate == "40001"
        assert "could not serialize access" in str(failed.value)
        with pytest.raises(asyncpg.SerializationError):
            await asyncio.wait_for(conn.execute("SELECT 'lab_marker'; SELECT 1"), CALL_S)  # simple query
        assert await asyncio.wait_for(conn.fetchval("SELECT 2"), CALL_S) == 2
        assert not conn.is_in_transaction()
        await proxy.remove_toxic("postgres", "ser")
        assert await asyncio.wait_for(conn.fetchval("SELECT 'lab_marker'"), CALL_S) == "lab_marker"
    finally:
        await conn.close()


@pytest.mark.parametrize("sqlstate,error", [
    ("40P01", asyncpg.DeadlockDetectedError),
    ("57014", asyncpg.QueryCanceledError),
])
async def test_other_sqlstates_and_a_chosen_message(stack, proxy, sqlstate, error):
    conn = await connect(stack)
    try:
        await add(proxy, "err", pattern="^select 'x'", sqlstate=sqlstate, message="made up by the lab")
        with pytest.raises(error) as failed:
            await asyncio.wait_for(conn.fetchval("select 'x'"), CALL_S)
        assert str(failed.value) == "made up by the lab"
        assert await asyncio.wait_for(conn.fetchval("select 'y'"), CALL_S) == "y"
    finally:
        await conn.close()


async def test_a_failure_inside_a_transaction_fails_it_on_the_server_too(stack, proxy):
    """The server's own transaction is left failed: nothing the transaction wrote commits."""
    table = f"t_{uuid.uuid4().hex[:8]}"
    direct = await asyncpg.connect(direct_dsn(stack), timeout=CALL_S)
    conn = await connect(stack)
    try:
        await direct.execute(f"CREATE TABLE {table} (x int)")
        await add(proxy, "ser", pattern="lab_fail_here", sqlstate="40001")
        tx = conn.transaction()
        await tx.start()
        await conn.execute(f"INSERT INTO {table} VALUES (1)")
        with pytest.raises(asyncpg.SerializationError):
            await asyncio.wait_for(conn.execute("SELECT 'lab_fail_here'"), CALL_S)
        with pytest.raises(asyncpg.InFailedSQLTransactionError):  # 25P02: the server agrees it failed
            await asyncio.wait_for(conn.execute(f"INSERT INTO {table} VALUES (2)"), CALL_S)
        await asyncio.wait_for(tx.rollback(), CALL_S)
        assert not conn.is_in_transaction()
        assert await direct.fetchval(f"SELECT count(*) FROM {table}") == 0
        assert await asyncio.wait_for(conn.fetchval("SELECT 3"), CALL_S) == 3
    finally:
        await conn.close()
        await direct.execute(f"DROP TABLE IF EXISTS {table}")
        await direct.close()


@pytest.mark.parametrize("protocol", ["extended", "simple"])
async def test_removed_while_its_rewritten_statement_is_answered_the_session_stays_in_step(stack, proxy, protocol):
    """The heal of a scenario removes the toxic whenever it comes: here while the server's answer to a statement
    the toxic rewrote is still on its way (held by a latency toxic after it). The answer's extra
    ReadyForQuery must still be dropped: the client gets exactly the error it is owed and the session goes on."""
    await add(proxy, "ser", pattern="lab_in_flight", sqlstate="40001")
    conn = await connect(stack)  # a session the toxic follows from its start: it knows what is prepared
    statement = "SELECT 'lab_in_flight'"
    try:
        prepared = await conn.prepare(statement)  # Parse and Describe pass; from now on one round trip a call
        # after the toxic on the way up: what it rewrote reaches the server 400 ms later
        await proxy.add_toxic("postgres", "latency", name="slow_requests", stream="upstream",
                              attributes={"latency": 400})
        call = prepared.fetchval() if protocol == "extended" else conn.execute(statement)
        pending = asyncio.ensure_future(asyncio.wait_for(call, CALL_S))
        await asyncio.sleep(0.15)  # rewritten by the toxic, not yet answered by the server
        await proxy.remove_toxic("postgres", "ser")
        with pytest.raises(asyncpg.SerializationError):
            await pending
        await proxy.remove_toxic("postgres", "slow_requests")
        assert await asyncio.wait_for(conn.fetchval("SELECT 5"), CALL_S) == 5
        assert await asyncio.wait_for(conn.fetchval(statement), CALL_S) == "lab_in_flight"
        assert not conn.is_in_transaction()
    finally:
        await conn.close()


async def test_a_toxic_added_to_a_session_under_way_knows_its_cached_statements(stack, proxy):
    conn = await connect(stack)
    try:
        assert await conn.fetchval("SELECT 'lab_cached'") == "lab_cached"  # prepared and cached now
        await add(proxy, "ser", pattern="lab_cached", sqlstate="40001")
        with pytest.raises(asyncpg.SerializationError):
            await asyncio.wait_for(conn.fetchval("SELECT 'lab_cached'"), CALL_S)
        assert await asyncio.wait_for(conn.fetchval("SELECT 4"), CALL_S) == 4
    finally:
        await conn.close()


async def test_admin_shutdown_closes_the_session_and_a_pool_replaces_it(stack, proxy):
    name = f"shutdown-{uuid.uuid4().hex[:6]}"
    pool = await asyncpg.create_pool(stack.pg_dsn, min_size=1, max_size=1, server_settings={"application_name": name})
    try:
        pid_before = await pool.fetchval("SELECT pg_backend_pid()")
        await add(proxy, "kill", pattern="lab_kill_me", sqlstate="57P01")
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, asyncpg.AdminShutdownError)) as failed:
            await asyncio.wait_for(pool.fetchval("SELECT 'lab_kill_me'"), CALL_S)
        assert "terminating connection due to administrator command" in str(failed.value)
        pid_after = await asyncio.wait_for(pool.fetchval("SELECT pg_backend_pid()"), CALL_S)
        assert pid_after != pid_before
        direct = await asyncpg.connect(direct_dsn(stack), timeout=CALL_S)
        try:
            deadline = time.monotonic() + CALL_S
            while True:  # the killed session's backend is gone from the server too: no leak
                pids = {r[0] for r in await direct.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name)}
                if pids == {pid_after} or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert pids == {pid_after}
        finally:
            await direct.close()
    finally:
        await asyncio.wait_for(pool.close(), CALL_S)


async def test_too_many_connections_at_startup_leaves_open_sessions_alone(stack, proxy):
    conn = await connect(stack)
    try:
        await add(proxy, "full", sqlstate="53300")
        with pytest.raises(asyncpg.TooManyConnectionsError) as failed:
            await connect(stack)
        assert failed.value.sqlstate == "53300"
        assert await asyncio.wait_for(conn.fetchval("SELECT 5"), CALL_S) == 5
        await proxy.remove_toxic("postgres", "full")
        again = await connect(stack)
        await again.close()
    finally:
        await conn.close()


async def test_latency_only_for_matching_statements(stack, proxy):
    conn = await connect(stack)
    try:
        await add(proxy, "slow", pattern="lab_slow", sqlstate="", latency=200)
        started = time.monotonic()
        await conn.fetchval("SELECT 1")
        fast_s = time.monotonic() - started
        started = time.monotonic()
        assert await conn.fetchval("SELECT 'lab_slow'") == "lab_slow"
        slow_s = time.monotonic() - started
        assert fast_s < 0.1  # tolerance: a loaded 2-core machine
        assert 0.2 <= slow_s < 0.2 + 0.3
    finally:
        await conn.close()


async def test_probability_fails_some_matching_statements(stack, proxy):
    conn = await connect(stack)
    try:
        await add(proxy, "some", pattern="lab_some", sqlstate="40001", probability=0.5)
        failures = 0
        for _ in range(60):
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 'lab_some'"), CALL_S)
            except asyncpg.SerializationError:
                failures += 1
        assert 10 <= failures <= 50  # binomial(60, 0.5): outside this, p < 1e-6
    finally:
        await conn.close()


async def test_bad_attributes_are_a_400_naming_the_attribute(stack, proxy):
    from lab.proxy.client import BadRequest

    with pytest.raises(BadRequest, match="pattern"):
        await add(proxy, "bad", pattern="(unclosed")
    with pytest.raises(BadRequest, match="sqlstate"):
        await add(proxy, "bad", sqlstate="4000")
    assert await proxy.toxics("postgres") == []


async def test_removing_the_toxic_while_failed_transactions_are_in_flight_leaves_every_session_in_step(stack, proxy):
    """A heal in the middle of a failed statement's exchange: the toxic added a Sync of its own, and the
    server's answer to it must still be dropped, or asyncpg gets a ReadyForQuery it never asked for and closes
    the connection ("connection was closed in the middle of operation": pg_serialization_failures, 1 run in
    180 of `lab run --all --repeat 10`; 72 broken transactions in 332 removals before the fix). 120 removals
    at random moments under four busy sessions; every error must be the injected 40001."""
    table = f"t_{uuid.uuid4().hex[:8]}"
    direct = await asyncpg.connect(direct_dsn(stack), timeout=CALL_S)
    await direct.execute(f"CREATE TABLE {table} (op int NOT NULL, touched bool NOT NULL DEFAULT false)")
    sessions = [await connect(stack) for _ in range(4)]
    stop, outcomes = asyncio.Event(), {"committed": 0, "40001": 0}
    other: list[str] = []

    async def transactions(conn: asyncpg.Connection, first: int) -> None:
        op = first
        while not stop.is_set() and not other:
            op += 1
            try:
                async with conn.transaction():
                    await asyncio.wait_for(conn.execute(f"INSERT INTO {table} (op) VALUES ($1)", op), CALL_S)
                    await asyncio.wait_for(conn.execute(
                        f"UPDATE {table} SET touched = true WHERE op = $1 /* lab_heal_in_flight */", op), CALL_S)
                outcomes["committed"] += 1
            except asyncpg.SerializationError:
                outcomes["40001"] += 1
            except Exception as err:  # the session fell out of step with the server
                other.append(f"{type(err).__name__}: {err}")

    rng = random.Random(15)
    workers = [asyncio.create_task(transactions(conn, index * 100_000)) for index, conn in enumerate(sessions)]
    try:
        for _ in range(120):
            await add(proxy, "heal", pattern="lab_heal_in_flight", sqlstate="40001", probability=0.5)
            await asyncio.sleep(rng.uniform(0.002, 0.03))
            await proxy.remove_toxic("postgres", "heal")
            await asyncio.sleep(rng.uniform(0.0, 0.01))
            if other:
                break
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 3 * CALL_S)
        for conn in sessions:
            conn.terminate()
        await direct.execute(f"DROP TABLE {table}")
        await direct.close()
    assert other == [], other[:3]
    assert outcomes["40001"] > 0 and outcomes["committed"] > 0, outcomes  # the fault acted, and work went on
