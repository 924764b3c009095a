"""A small real HTTP service on asyncpg: GET /orders reads from Postgres, GET /metrics exports its breaker.

    python orders_service.py --port 8000 --dsn postgresql://...            # resilient
    python orders_service.py --port 8000 --dsn postgresql://... --fragile  # no breaker, no timeouts

Resilient: every database wait is bounded (0.5 s acquire and command) and an aiobreaker breaker guards
the database; while it is OPEN, /orders answers 503 at once. /metrics exports
``orders_db_breaker_state{name="orders-db"}`` as 0 (closed), 1 (open) or 2 (half-open). Fragile: the
same endpoint with no breaker and no timeouts, answering 500 on an error (the negative control).
Plain asyncio (no web framework), so the example needs only what the lab already installs.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

import aiobreaker
import asyncpg

STATES = {"closed": 0, "open": 1, "half-open": 2, "half_open": 2}


class Orders:
    def __init__(self, dsn: str, fragile: bool) -> None:
        self.dsn, self.fragile = dsn, fragile
        self.pool: asyncpg.Pool | None = None
        self.breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=1), name="orders-db")

    async def start(self) -> None:
        timeouts = {} if self.fragile else {"timeout": 0.5, "command_timeout": 0.5}
        self.pool = await asyncpg.create_pool(self.dsn, min_size=4, max_size=4, **timeouts)

    async def _query(self) -> int:
        assert self.pool is not None
        if self.fragile:
            async with self.pool.acquire() as conn:
                return await conn.fetchval("SELECT 1")
        async with self.pool.acquire(timeout=0.5) as conn:
            return await conn.fetchval("SELECT 1", timeout=0.5)

    async def order(self) -> tuple[int, bytes]:
        if self.fragile:
            try:
                return 200, b'{"orders": %d}' % await self._query()
            except Exception as err:
                return 500, repr(err).encode()
        try:
            return 200, b'{"orders": %d}' % await self.breaker.call_async(self._query)
        except aiobreaker.CircuitBreakerError:
            return 503, b"database breaker open"
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                asyncpg.InternalClientError) as err:
            return 503, repr(err).encode()

    def metrics(self) -> bytes:
        state = STATES.get(self.breaker.current_state.name.lower(), 0) if not self.fragile else 0
        return (b"# TYPE orders_db_breaker_state gauge\n"
                b'orders_db_breaker_state{name="orders-db"} %d\n' % state)


async def serve(orders: Orders, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await reader.readline()
            if not request:
                return
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            path = request.split(b" ")[1] if len(request.split(b" ")) > 1 else b"/"
            if path == b"/metrics":
                status, body = 200, orders.metrics()
            elif path == b"/orders":
                status, body = await orders.order()
            else:
                status, body = 404, b"not found"
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s"
                         % (status, len(body), body))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--fragile", action="store_true")
    args = parser.parse_args()
    orders = Orders(args.dsn, args.fragile)
    await orders.start()
    server = await asyncio.start_server(lambda r, w: serve(orders, r, w), "127.0.0.1", args.port)
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
