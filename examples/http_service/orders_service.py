"""A small real HTTP service on asyncpg and aiokafka: GET /orders reads from Postgres and announces the
order on Kafka, GET /metrics exports its breakers.

    python orders_service.py --port 8000 --dsn postgresql://... --bootstrap 127.0.0.1:9092            # resilient
    python orders_service.py --port 8000 --dsn postgresql://... --bootstrap 127.0.0.1:9092 --fragile  # neither

Resilient: every wait is bounded (0.5 s acquire and command; each send 1 s, acks=all) and an aiobreaker
breaker guards each dependency; while either is OPEN, /orders answers 503 at once. /metrics exports
``orders_db_breaker_state{name="orders-db"}`` and ``orders_events_breaker_state{name="orders-events"}`` as 0
(closed), 1 (open) or 2 (half-open). Fragile: the same endpoint with no breaker and no timeouts, answering
500 on an error (the negative control). Without ``--bootstrap`` it has no Kafka side. Plain asyncio (no web
framework), so the example needs only what the lab already installs.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

import uuid

import aiobreaker
import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

READ = "SELECT 1 /* orders.read */"  # its statement: orders.toml names it ([statements]) for the protocol faults
STATES = {"closed": 0, "open": 1, "half-open": 2, "half_open": 2}


class Orders:
    def __init__(self, dsn: str, bootstrap: str | None, fragile: bool) -> None:
        self.dsn, self.bootstrap, self.fragile = dsn, bootstrap, fragile
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self.topic = f"orders-{uuid.uuid4().hex[:8]}"
        self.breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=1), name="orders-db")
        self.events_breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=1),
                                                        name="orders-events")

    async def start(self) -> None:
        timeouts = {} if self.fragile else {"timeout": 0.5, "command_timeout": 0.5}
        self.pool = await asyncpg.create_pool(self.dsn, min_size=4, max_size=4, **timeouts)
        if self.bootstrap:
            bounds = {} if self.fragile else {"request_timeout_ms": 1000, "retry_backoff_ms": 100}
            self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
                                             **bounds)
            await self.producer.start()

    async def _announce(self) -> None:
        if self.producer is None:
            return
        send = self.producer.send_and_wait(self.topic, b"order read", key=uuid.uuid4().hex.encode())
        await (send if self.fragile else asyncio.wait_for(send, 1.0))

    async def _query(self) -> int:
        assert self.pool is not None
        if self.fragile:
            async with self.pool.acquire() as conn:
                return await conn.fetchval(READ)
        async with self.pool.acquire(timeout=0.5) as conn:
            return await conn.fetchval(READ, timeout=0.5)

    async def order(self) -> tuple[int, bytes]:
        """The order read from Postgres and announced on Kafka at once (each dependency, and each breaker, sees
        every request)."""
        if self.fragile:
            try:
                count, _ = await asyncio.gather(self._query(), self._announce())
                return 200, b'{"orders": %d}' % count
            except Exception as err:
                return 500, repr(err).encode()
        count, announced = await asyncio.gather(self._guarded(self.breaker, self._query),
                                                self._guarded(self.events_breaker, self._announce),
                                                return_exceptions=True)
        for outcome in (count, announced):
            if isinstance(outcome, BaseException):
                return 503, repr(outcome).encode()
        return 200, b'{"orders": %d}' % count

    @staticmethod
    async def _guarded(breaker: aiobreaker.CircuitBreaker, call):
        try:
            return await breaker.call_async(call)
        except aiobreaker.CircuitBreakerError as err:
            raise RuntimeError(f"{breaker.name} breaker open") from err
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                asyncpg.InternalClientError, KafkaError) as err:
            raise RuntimeError(f"{breaker.name}: {err!r}") from err

    def metrics(self) -> bytes:
        lines = []
        for metric, breaker in (("orders_db_breaker_state", self.breaker),
                                ("orders_events_breaker_state", self.events_breaker)):
            state = STATES.get(breaker.current_state.name.lower(), 0) if not self.fragile else 0
            lines.append(b"# TYPE %s gauge\n%s{name=\"%s\"} %d\n" % (metric.encode(), metric.encode(),
                                                                      breaker.name.encode(), state))
        return b"".join(lines)


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
    parser.add_argument("--bootstrap", help="the Kafka bootstrap address (host:port); none: no Kafka side")
    parser.add_argument("--fragile", action="store_true")
    args = parser.parse_args()
    orders = Orders(args.dsn, args.bootstrap, args.fragile)
    await orders.start()
    server = await asyncio.start_server(lambda r, w: serve(orders, r, w), "127.0.0.1", args.port)
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
