"""A small "orders" service on asyncpg, put under the lab's scenarios as a Python target.

    python -m lab run postgres_restart --target shop_chaos:resilient   # exit 0: PASS
    python -m lab run postgres_restart --target shop_chaos:fragile     # exit 1: FAIL (the negative control)

``resilient`` bounds every wait (pool acquire, command, connect) and guards the database with an
aiobreaker circuit breaker; ``fragile`` is the same service with no breaker and no timeouts. Nothing here
belongs to the lab except the two lines that describe the service to it (``python_target``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiobreaker
import asyncpg

from lab.scenario.python_target import python_target


class OrdersUnavailable(Exception):
    """What the service answers while its database is out of reach (an HTTP 503 in a real one)."""


class Orders:
    def __init__(self, resilient: bool) -> None:
        self.resilient = resilient
        self.pool: asyncpg.Pool | None = None
        self.breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=1), name="orders-db")

    async def connect(self, settings) -> None:
        timeouts = {"timeout": 1.0, "command_timeout": 1.0} if self.resilient else {"command_timeout": None}
        self.pool = await asyncpg.create_pool(settings.pg_dsn, min_size=4, max_size=4, **timeouts)

    async def close(self) -> None:
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 3)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.pool.terminate()

    async def _count(self) -> int:
        assert self.pool is not None
        if not self.resilient:
            async with self.pool.acquire() as conn:
                return await conn.fetchval("SELECT 1")
        async with self.pool.acquire(timeout=1.0) as conn:
            return await conn.fetchval("SELECT 1", timeout=1.0)

    async def place_order(self) -> int:
        if not self.resilient:
            return await self._count()
        try:
            return await self.breaker.call_async(self._count)
        except aiobreaker.CircuitBreakerError as err:
            raise OrdersUnavailable("breaker open") from err
        # InternalClientError is neither a PostgresError nor an InterfaceError: the lab's first run of this
        # example caught it escaping mid-restart ("pg: only expected errors" failed)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                asyncpg.InternalClientError) as err:
            raise OrdersUnavailable(f"{type(err).__name__}: {err}") from err

    async def pool_is_whole(self) -> tuple[bool, str]:
        """After the recovery: every connection back in the pool, and each one answers."""
        assert self.pool is not None
        results = await asyncio.gather(*(self.place_order() for _ in range(4)), return_exceptions=True)
        await asyncio.sleep(0.1)
        size, idle = self.pool.get_size(), self.pool.get_idle_size()
        failed = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        ok = not failed and idle == size
        return ok, f"idle {idle} of {size}; 4 concurrent orders: {failed or 'all placed'}"


def _target(resilient: bool):
    orders = Orders(resilient)
    return python_target(orders.place_order, name="orders (resilient)" if resilient else "orders (fragile)",
                         covers=("pg",), breakers={"pg": orders.breaker if resilient else None},
                         expected_errors=[OrdersUnavailable],
                         probes={"pg.pool": orders.pool_is_whole}, on_start=orders.connect, on_close=orders.close)


resilient = _target(True)
fragile = _target(False)
