"""A team's own chaos tests, written with the lab's pytest plugin (installed with chaoslab: no conftest needed).

    pip install chaoslab aiobreaker asyncpg pytest pytest-asyncio
    python -m lab up            # or let the lab_stack fixture bring one up for the session
    pytest -p asyncio --asyncio-mode=auto test_orders_chaos.py

``test_resilient_orders_cycle_their_breaker`` passes; ``test_fragile_orders_...`` fails on purpose (no
breaker, no timeouts: the plugin's negative control); ``test_a_fault_left_in_force_...`` fails with the
partition still in force, and the ``chaos`` fixture heals it at teardown.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiobreaker
import asyncpg
import pytest

from lab.testing import assert_breaker_cycle, assert_calls_bounded, assert_recovered

pytestmark = pytest.mark.chaos


async def _drive(recorder, call, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            await recorder.call(call)
        except Exception:
            pass
        await asyncio.sleep(0.02)


async def test_resilient_orders_cycle_their_breaker(lab_stack, chaos, lab_history):
    breaker = aiobreaker.CircuitBreaker(fail_max=3, timeout_duration=timedelta(seconds=0.5), name="orders-db")
    lab_history.observe("pg", breaker)
    pool = await asyncpg.create_pool(lab_stack.pg_dsn, min_size=2, max_size=2, timeout=1, command_timeout=1)

    async def one() -> int:
        async with pool.acquire(timeout=1) as conn:
            return await conn.fetchval("SELECT 1", timeout=1)

    try:
        await _drive(lab_history, lambda: breaker.call_async(one), 0.3)
        async with chaos.partition("postgres"):
            await _drive(lab_history, lambda: breaker.call_async(one), 1.5)
        await _drive(lab_history, lambda: breaker.call_async(one), 2.0)
    finally:
        pool.terminate()
    assert_breaker_cycle(lab_history.history, "pg", wait_open_s=0.5, tolerance_s=0.15)
    assert_calls_bounded(lab_history.history, "pg", bound_s=2.5)
    assert_recovered(lab_history.history, "pg")


async def test_fragile_orders_fail_the_breaker_assertion(lab_stack, chaos, lab_history):
    lab_history.no_breaker("pg")  # said plainly: without it the breaker assertion is UNKNOWN, and fails as such
    pool = await asyncpg.create_pool(lab_stack.pg_dsn, min_size=2, max_size=2)

    async def one() -> int:
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT 1")

    try:
        await _drive(lab_history, one, 0.3)
        async with chaos.partition("postgres"):
            await _drive(lab_history, one, 1.5)
        await _drive(lab_history, one, 1.0)
    finally:
        pool.terminate()
    assert_breaker_cycle(lab_history.history, "pg", wait_open_s=0.5)  # fails: there is no breaker to observe


async def test_a_fault_left_in_force_is_healed_at_teardown(lab_stack, chaos):
    await chaos.partition("kafka").__aenter__()  # entered, never left: the test fails mid-fault
    assert False, "failing with the kafka partition in force"
