"""PostgresClient on the real stack, through the proxy: cleanup, cancellation, resets, no leaks."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import pytest

from lab.clients import PostgresClient, PostgresSettings
from lab.errors import DatabaseUnavailable, PoolExhausted, QueryTimeout

from .conftest import direct_dsn

pytestmark = pytest.mark.integration


def settings(stack, name: str, **overrides) -> PostgresSettings:
    values = dict(dsn=stack.pg_dsn, application_name=name, min_size=2, max_size=10, acquire_timeout_s=2,
                  command_timeout_s=3, close_timeout_s=2)
    values.update(overrides)
    return PostgresSettings(**values)


async def server_sessions(stack, name: str) -> int:
    conn = await asyncpg.connect(direct_dsn(stack), timeout=5)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name)
    finally:
        await conn.close()


async def settle_sessions(stack, name: str, expected: int, timeout_s: float = 5.0) -> int:
    deadline = time.monotonic() + timeout_s
    count = await server_sessions(stack, name)
    while count != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        count = await server_sessions(stack, name)
    return count


async def test_hundred_connections_closed_during_active_transactions(stack):
    client = await PostgresClient(settings(stack, "cleanup-tx", min_size=10, max_size=100)).start()
    started = asyncio.Event()
    entered = 0

    async def in_transaction():
        nonlocal entered
        async with client.transaction() as conn:
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS t (x int)")
            entered += 1
            if entered == 100:
                started.set()
            await conn.execute("SELECT pg_sleep(30)")

    tasks = [asyncio.create_task(in_transaction()) for _ in range(100)]
    await asyncio.wait_for(started.wait(), 20)
    assert client.stats().in_use == 100
    t0 = time.monotonic()
    await client.close()  # graceful close cannot finish: it must fall back to terminate
    assert time.monotonic() - t0 < client.settings.close_timeout_s + 1
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(isinstance(r, BaseException) for r in results)
    assert await settle_sessions(stack, "cleanup-tx", 0) == 0


async def test_close_during_pool_exhaustion_leaves_nothing(stack):
    client = await PostgresClient(settings(stack, "cleanup-exhausted", max_size=5, acquire_timeout_s=5)).start()

    async def hold():
        async with client.connection() as conn:
            await conn.execute("SELECT pg_sleep(30)")

    tasks = [asyncio.create_task(hold()) for _ in range(30)]  # 5 hold, 25 wait
    await asyncio.sleep(0.5)
    stats = client.stats()
    assert stats.in_use == 5 and stats.waiting == 25
    t0 = time.monotonic()
    await client.close()
    assert time.monotonic() - t0 < client.settings.close_timeout_s + 1
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(isinstance(r, BaseException) for r in results)
    assert await settle_sessions(stack, "cleanup-exhausted", 0) == 0


async def test_pool_exhaustion_is_reported_as_pool_exhausted(stack):
    async with PostgresClient(settings(stack, "exhaust", max_size=2, acquire_timeout_s=0.3)) as client:
        holders = [asyncio.create_task(client.fetchval("SELECT pg_sleep(1)")) for _ in range(2)]
        await asyncio.sleep(0.1)
        with pytest.raises(PoolExhausted, match="no connection within 0.3s"):
            await client.fetchval("SELECT 1")
        await asyncio.gather(*holders)


async def test_cancellation_storm_leaves_the_pool_consistent(stack):
    async with PostgresClient(settings(stack, "storm", min_size=5, max_size=10, acquire_timeout_s=5)) as client:
        rng = random.Random(7)

        async def query():
            await client.fetchval("SELECT pg_sleep(0.05)")

        for _ in range(10):
            tasks = [asyncio.create_task(query()) for _ in range(40)]  # 10 mid-query, 30 mid-acquire
            await asyncio.sleep(rng.uniform(0.0, 0.04))
            for task in tasks:
                if rng.random() < 0.7:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.2)
        stats = client.stats()
        assert stats.idle == stats.size and stats.waiting == 0
        assert await asyncio.gather(*(client.fetchval("SELECT 1") for _ in range(10))) == [1] * 10
        report = await client.leak_check(direct_dsn(stack))
        assert report.ok, report


async def test_reset_peer_mid_query_replaces_the_connection_without_leaks(stack, proxy):
    async with PostgresClient(settings(stack, "reset", min_size=1, max_size=1)) as client:
        before = await client.fetchval("SELECT pg_backend_pid()")
        await proxy.add_toxic("postgres", "reset_peer", stream="upstream", attributes={"timeout": 200})
        with pytest.raises(DatabaseUnavailable):
            await client.fetchval("SELECT pg_sleep(2)")
        await proxy.reset()
        after = await client.fetchval("SELECT pg_backend_pid()")
        assert after != before
        assert await settle_sessions(stack, "reset", 1) == 1
        assert (await client.leak_check(direct_dsn(stack))).ok


async def test_a_silently_dead_idle_connection_is_replaced_before_hand_out(stack, proxy):
    """The idle connection goes quiet (no FIN, no RST): only validation can tell."""
    async with PostgresClient(settings(stack, "validate", min_size=1, max_size=1, validate_idle_after_s=0.2,
                                       validation_timeout_s=0.3)) as client:
        before = await client.fetchval("SELECT pg_backend_pid()")
        await asyncio.sleep(0.3)
        await proxy.add_toxic("postgres", "latency", name="quiet", attributes={"latency": 5000})
        query = asyncio.create_task(client.fetchval("SELECT pg_backend_pid()"))
        await asyncio.sleep(0.5)  # validation (0.3 s) has failed; the replacement is connecting
        await proxy.remove_toxic("postgres", "quiet")
        assert await asyncio.wait_for(query, 5) != before  # no error reached the caller
        assert client.replaced_connections == 1


async def test_business_errors_pass_through_and_do_not_trip_the_breaker(stack):
    async with PostgresClient(settings(stack, "business")) as client:
        await client.execute("CREATE TABLE IF NOT EXISTS uniq (id int PRIMARY KEY)")
        await client.execute("INSERT INTO uniq VALUES (1) ON CONFLICT DO NOTHING")
        for _ in range(30):
            with pytest.raises(asyncpg.UniqueViolationError):
                await client.execute("INSERT INTO uniq VALUES (1)")
        metrics = client.breaker.metrics()
        assert client.breaker.state.value == "CLOSED"
        assert metrics["buffered_calls"] == 2 and metrics["failed_calls"] == 0  # the CREATE and the first INSERT


async def test_statement_timeout_is_a_query_timeout(stack):
    async with PostgresClient(settings(stack, "timeout")) as client:
        with pytest.raises(QueryTimeout):
            await client.fetchval("SELECT pg_sleep(5)", timeout=0.3)
        assert await client.fetchval("SELECT 1") == 1


async def test_close_during_an_outage_returns_within_its_bound(stack, proxy):
    client = await PostgresClient(settings(stack, "outage-close", min_size=3, close_timeout_s=1)).start()
    await proxy.add_toxic("postgres", "timeout", attributes={"timeout": 0})
    await proxy.add_toxic("postgres", "timeout", name="up", stream="upstream", attributes={"timeout": 0})
    busy = asyncio.create_task(client.fetchval("SELECT 1", timeout=10))
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    await client.close()
    assert time.monotonic() - t0 < 2.0
    busy.cancel()
    await asyncio.gather(busy, return_exceptions=True)


async def test_a_connection_poisoned_by_a_fatal_message_is_translated(stack, proxy):
    """A backend that dies while its connection idles sends FATAL, then closes. Held open (slow_close),
    the connection looks alive but asyncpg's protocol is stuck consuming that error: its next command
    raises InternalClientError ("cannot switch to state ..."), which must come out as DatabaseUnavailable;
    the next command gets a fresh connection."""
    async with PostgresClient(settings(stack, "poisoned", min_size=1, max_size=1,
                                       validate_idle_after_s=60)) as client:
        victim = await client.fetchval("SELECT pg_backend_pid()")
        await proxy.add_toxic("postgres", "slow_close", attributes={"delay": 3000})
        conn = await asyncpg.connect(direct_dsn(stack), timeout=5)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", victim, timeout=5)
        finally:
            await conn.close()
        await asyncio.sleep(0.3)  # the FATAL message has arrived; the close is held back
        with pytest.raises(DatabaseUnavailable) as raised:
            await client.fetchval("SELECT 1")
        assert isinstance(raised.value.__cause__, asyncpg.InternalClientError), repr(raised.value.__cause__)
        assert await client.fetchval("SELECT pg_backend_pid()") != victim
        assert client.stats().size == 1


async def test_a_call_cancelled_while_its_connection_is_validated_leaks_nothing(stack, proxy):
    """Cancelled during the idle check's SELECT 1, the connection is neither the caller's nor back in
    the pool unless the client hands it back: with a pool of one, a leak starves every later call.
    (The cancellation_storm scenario once ended with idle 4 != size 5.)"""
    async with PostgresClient(settings(stack, "cancel-validate", min_size=1, max_size=1, acquire_timeout_s=1,
                                       validate_idle_after_s=0.2, validation_timeout_s=2)) as client:
        await client.fetchval("SELECT 1")
        await asyncio.sleep(0.3)  # idle past validate_idle_after_s: the next acquire validates
        await proxy.add_toxic("postgres", "latency", name="slow", attributes={"latency": 500})
        call = asyncio.create_task(client.fetchval("SELECT 1"))
        await asyncio.sleep(0.2)  # inside the validation's SELECT 1
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        await proxy.remove_toxic("postgres", "slow")
        assert await client.fetchval("SELECT 1") == 1  # PoolExhausted if the connection leaked
        await asyncio.sleep(0.1)
        stats = client.stats()
        assert stats.idle == stats.size == 1 and stats.waiting == 0
