"""A user's service, not part of chaoslab: asyncpg behind a purgatory breaker (resilient) or bare (fragile).

tests/e2e/test_own_service.py copies this directory out of the repository and drives it from a venv that has only
the chaoslab wheel installed, through the three documented ways in:
- Python target: ``python -m lab run postgres_restart --target kiosk:resilient`` (or ``kiosk:fragile``);
- HTTP target: ``python kiosk.py PORT DSN [--fragile]`` serves GET /stock (503 at once while its breaker is
  open), and ``python -m lab run blackhole --target http://127.0.0.1:PORT/stock`` loads it with Locust;
- the pytest plugin: test_kiosk_chaos.py, beside this file.
Resilient: every wait bounded at 0.4 s and a purgatory breaker (3 failures, 1 s open). Fragile: neither.
"""

import asyncio
import sys

import asyncpg
from purgatory import AsyncCircuitBreakerFactory

from lab.scenario.python_target import python_target


class KioskUnavailable(Exception):
    pass


class Kiosk:
    def __init__(self, fragile: bool) -> None:
        self.fragile = fragile
        self.breakers = AsyncCircuitBreakerFactory(default_threshold=3, default_ttl=1.0)
        self.pool = None

    async def start(self, dsn: str) -> None:
        bounds = {} if self.fragile else {"timeout": 0.4, "command_timeout": 0.4}
        self.pool = await asyncpg.create_pool(dsn, min_size=3, max_size=3, **bounds)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()

    async def _stock(self) -> int:
        if self.fragile:
            async with self.pool.acquire() as conn:
                return await conn.fetchval("SELECT 42")
        async with self.pool.acquire(timeout=0.4) as conn:
            return await conn.fetchval("SELECT 42", timeout=0.4)

    async def pool_whole(self) -> tuple[bool, str]:
        """After the recovery: every connection back in the pool, and each one answers."""
        results = await asyncio.gather(*(self.stock() for _ in range(3)), return_exceptions=True)
        failed = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        idle, size = self.pool.get_idle_size(), self.pool.get_size()
        return not failed and idle == size == 3, f"idle {idle} of {size}; {failed or 'all answered'}"

    async def stock(self) -> int:
        if self.fragile:
            return await self._stock()
        try:
            async with await self.breakers.get_breaker("db"):
                return await self._stock()
        except Exception as err:
            raise KioskUnavailable(f"{type(err).__name__}: {err}") from err


def _target(fragile: bool):
    kiosk = Kiosk(fragile)

    async def start(settings) -> None:
        await kiosk.start(settings.pg_dsn)

    return python_target(kiosk.stock, name="kiosk", covers=("pg",),
                         breakers={"pg": None if fragile else kiosk.breakers},
                         expected_errors=[KioskUnavailable], probes={"pg.pool": kiosk.pool_whole},
                         statements={"pg": r"SELECT 42"}, on_start=start, on_close=kiosk.close)


def resilient():
    return _target(False)


def fragile():
    return _target(True)


async def _serve(port: int, dsn: str, fragile: bool) -> None:
    kiosk = Kiosk(fragile)
    await kiosk.start(dsn)

    async def handle(reader, writer) -> None:
        try:
            while await reader.readline():
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                try:
                    status, body = 200, b"%d" % await kiosk.stock()
                except Exception as err:
                    status, body = (500 if fragile else 503), repr(err).encode()
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2], "--fragile" in sys.argv))
