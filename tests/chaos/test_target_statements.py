"""A user's service names its own statements, and the protocol-aware faults hit those.

pg_admin_shutdown's fault matches the lab workload's query text by default, so a service that runs its own
SQL is never hit by it (the precondition is unmet: UNKNOWN). With ``statements={"pg": ...}`` the toxic
terminates the service's own sessions: the resilient service (aiobreaker, bounded waits) passes, the fragile
one (no breaker, no timeouts) fails, on the real stack.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiobreaker
import asyncpg
import pytest

from lab.scenario import available, run
from lab.scenario.python_target import python_target

pytestmark = pytest.mark.chaos

STATEMENT = "SELECT 'kiosk_stock_level'"


class Unavailable(Exception):
    pass


class Stock:
    """A user's service: one query of its own text, behind an aiobreaker breaker unless fragile."""

    def __init__(self, fragile: bool) -> None:
        self.fragile = fragile
        self.pool: asyncpg.Pool | None = None
        self.breaker = aiobreaker.CircuitBreaker(fail_max=3, timeout_duration=timedelta(seconds=0.5))

    async def start(self, settings) -> None:
        bounds = {} if self.fragile else {"timeout": 0.5, "command_timeout": 0.5}
        self.pool = await asyncpg.create_pool(settings.pg_dsn, min_size=3, max_size=3, **bounds)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()

    async def _level(self) -> str:
        assert self.pool is not None
        async with self.pool.acquire(timeout=None if self.fragile else 0.5) as conn:
            return await conn.fetchval(STATEMENT)

    async def level(self) -> str:
        if self.fragile:
            return await self._level()
        try:
            return await self.breaker.call_async(self._level)
        except (aiobreaker.CircuitBreakerError, OSError, asyncio.TimeoutError, asyncpg.PostgresError,
                asyncpg.InterfaceError, asyncpg.InternalClientError) as err:
            raise Unavailable(type(err).__name__) from err

    async def pool_whole(self) -> tuple[bool, str]:
        assert self.pool is not None
        results = await asyncio.gather(*(self.level() for _ in range(3)), return_exceptions=True)
        failed = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        idle, size = self.pool.get_idle_size(), self.pool.get_size()
        return not failed and idle == size == 3, f"idle {idle} of {size}; {failed or 'all answered'}"


def _target(fragile: bool, named: bool):
    stock = Stock(fragile)
    return python_target(stock.level, name="stock", covers=("pg",),
                         breakers={"pg": None if fragile else stock.breaker}, expected_errors=[Unavailable],
                         probes={"pg.pool": stock.pool_whole}, on_start=stock.start, on_close=stock.close,
                         statements={"pg": r"kiosk_stock_level"} if named else None)


def _verdicts(result) -> dict[str, tuple[str, str]]:
    return {v.check: (v.result, v.evidence) for v in result.verdicts}


def _run(settings, fragile: bool, named: bool):
    result = asyncio.run(run(available()["pg_admin_shutdown"], _target(fragile, named), settings))
    assert result.error is None, result.error
    return result, _verdicts(result)


def test_the_fault_hits_the_statements_the_resilient_service_names_and_it_passes(chaos_settings):
    result, verdicts = _run(chaos_settings, fragile=False, named=True)
    assert verdicts["precondition: pg: the fault killed sessions"][0] == "pass", verdicts
    assert result.verdict == "pass", "\n".join(f"{r} {c}: {e}" for c, (r, e) in verdicts.items())
    (fault,) = [e.get("fault") for e in result.history.of("fault", edge="inject")]
    assert "kiosk_stock_level" in str(fault)


def test_the_fragile_service_hit_the_same_way_fails(chaos_settings):
    result, verdicts = _run(chaos_settings, fragile=True, named=True)
    assert verdicts["precondition: pg: the fault killed sessions"][0] == "pass", verdicts
    assert result.verdict == "fail", verdicts
    assert verdicts["pg: breaker opens when its window reaches a threshold"][0] == "fail", verdicts


def test_a_service_that_names_no_statements_is_not_hit_and_the_verdict_is_unknown(chaos_settings):
    result, verdicts = _run(chaos_settings, fragile=False, named=False)
    assert verdicts["precondition: pg: the fault killed sessions"][0] == "unknown", verdicts
    assert result.verdict == "unknown", verdicts
