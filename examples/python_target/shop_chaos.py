"""A small "orders" service on asyncpg and aiokafka, put under the lab's scenarios as a Python target.

    python -m lab run postgres_restart --target shop_chaos:resilient   # exit 0: PASS
    python -m lab run postgres_restart --target shop_chaos:fragile     # exit 1: FAIL (the negative control)
    python -m lab run kafka_broker_pause --target shop_chaos:resilient # the Kafka side: PASS
    python -m lab run kafka_broker_pause --target shop_chaos:fragile   # FAIL

Placing an order records it in Postgres and announces it on Kafka ("order placed", acks=all), both at
once. ``resilient`` bounds every wait (pool acquire, command, connect; each send by a deadline) and guards
each dependency with its own aiobreaker circuit breaker; ``fragile`` is the same service with no breaker
and no timeouts. It also tells the lab how to check that no acknowledged event was lost: every event the
broker acknowledged is read back from the topic after the recovery (the ``kafka.readback`` probe).
Nothing here belongs to the lab except ``python_target`` (what describes the service to it).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from datetime import timedelta

import aiobreaker
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from lab.scenario.python_target import python_target

SEND_DEADLINE_S = 1.5
RECORD = "SELECT 1 /* orders.record */"  # the service's statement (named to the lab below, for its protocol faults)


class OrdersUnavailable(Exception):
    """What the service answers while a dependency is out of reach (an HTTP 503 in a real one)."""


class Orders:
    def __init__(self, resilient: bool) -> None:
        self.resilient = resilient
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self.bootstrap = ""
        self.topic = f"orders-{uuid.uuid4().hex[:8]}"
        self.acked: set[bytes] = set()  # keys of the events the broker acknowledged
        self.sends = 0
        self.outcomes: collections.Counter[str] = collections.Counter()  # acked / failed / unknown, one per send
        self.breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=1), name="orders-db")
        self.events_breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=1),
                                                        name="orders-events")

    async def connect(self, settings) -> None:
        timeouts = {"timeout": 1.0, "command_timeout": 1.0} if self.resilient else {"command_timeout": None}
        self.pool = await asyncpg.create_pool(settings.pg_dsn, min_size=4, max_size=4, **timeouts)
        self.bootstrap = settings.kafka_bootstrap
        bounds = {"request_timeout_ms": 1000, "retry_backoff_ms": 100} if self.resilient else {}
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
                                         **bounds)
        await self.producer.start()

    async def close(self) -> None:
        if self.producer is not None:
            try:
                await asyncio.wait_for(self.producer.stop(), 3)
            except (asyncio.TimeoutError, KafkaError, OSError):
                pass
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 3)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.pool.terminate()

    async def _record(self) -> int:
        assert self.pool is not None
        if not self.resilient:
            async with self.pool.acquire() as conn:
                return await conn.fetchval(RECORD)
        async with self.pool.acquire(timeout=1.0) as conn:
            return await conn.fetchval(RECORD, timeout=1.0)

    async def _announce(self) -> None:
        """One event per order; its outcome is noted once: acked, failed (the broker said no) or unknown (no
        answer by the deadline, or cancelled: it may have been written)."""
        assert self.producer is not None
        key = uuid.uuid4().hex.encode()
        self.sends += 1
        outcome = "unknown"
        try:
            if self.resilient:
                await asyncio.wait_for(self.producer.send_and_wait(self.topic, b"order placed", key=key),
                                       SEND_DEADLINE_S)
            else:
                await self.producer.send_and_wait(self.topic, b"order placed", key=key)
            outcome = "acked"
            self.acked.add(key)
        except KafkaError as err:
            outcome = "unknown" if getattr(err, "retriable", False) else "failed"
            raise
        finally:
            self.outcomes[outcome] += 1

    async def _guarded(self, breaker: aiobreaker.CircuitBreaker, call) -> None:
        try:
            await breaker.call_async(call)
        except aiobreaker.CircuitBreakerError as err:
            raise OrdersUnavailable(f"{breaker.name}: breaker open") from err
        # InternalClientError is neither a PostgresError nor an InterfaceError: the lab's first run of this
        # example caught it escaping mid-restart ("pg: only expected errors" failed)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                asyncpg.InternalClientError, KafkaError) as err:
            raise OrdersUnavailable(f"{breaker.name}: {type(err).__name__}: {err}") from err

    async def place_order(self) -> None:
        """The order recorded and announced at once: each dependency sees every call (and each breaker too)."""
        if not self.resilient:
            await asyncio.gather(self._record(), self._announce())
            return
        results = await asyncio.gather(self._guarded(self.breaker, self._record),
                                       self._guarded(self.events_breaker, self._announce), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def pool_is_whole(self) -> tuple[bool, str]:
        """After the recovery: every connection back in the pool, and each one answers."""
        assert self.pool is not None
        results = await asyncio.gather(*(self._record() for _ in range(4)), return_exceptions=True)
        await asyncio.sleep(0.1)
        size, idle = self.pool.get_size(), self.pool.get_idle_size()
        failed = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        ok = not failed and idle == size
        return ok, f"idle {idle} of {size}; 4 concurrent queries: {failed or 'all answered'}"

    async def events_all_there(self) -> tuple[bool, str]:
        """After the recovery: every event the broker acknowledged is in the topic (read from offset 0 to the
        end of each partition, bounded at 10 s)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    request_timeout_ms=5000)
        await consumer.start()
        found: set[bytes] = set()
        try:
            await asyncio.wait_for(consumer.topics(), 5)  # fetches the cluster's metadata
            partitions = consumer.partitions_for_topic(self.topic) or set()
            assigned = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(assigned)
            ends = await consumer.end_offsets(assigned)
            for tp in assigned:
                consumer.seek(tp, 0)
            deadline = asyncio.get_running_loop().time() + 10
            pending = list(assigned)
            while pending and asyncio.get_running_loop().time() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.update(r.key for r in records)
                pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
        finally:
            await asyncio.wait_for(consumer.stop(), 5)
        lost = self.acked - found
        return not lost, f"{len(self.acked)} events acknowledged, {len(lost)} of them not in the topic"

    async def every_send_accounted(self) -> tuple[bool, str]:
        """Each send has exactly one outcome noted: nothing the service sent is unaccounted for."""
        noted = sum(self.outcomes.values())
        return noted == self.sends, f"{self.sends} sends, {noted} outcomes noted {dict(self.outcomes)}"


def _target(resilient: bool):
    orders = Orders(resilient)
    return python_target(orders.place_order, name="orders (resilient)" if resilient else "orders (fragile)",
                         covers=("pg", "kafka"),
                         breakers={"pg": orders.breaker if resilient else None,
                                   "kafka": orders.events_breaker if resilient else None},
                         expected_errors=[OrdersUnavailable],
                         probes={"pg.pool": orders.pool_is_whole, "kafka.readback": orders.events_all_there,
                                 "kafka.ledger": orders.every_send_accounted},
                         statements={"pg": r"orders\.record"},  # what pg_admin_shutdown & co. hit
                         on_start=orders.connect, on_close=orders.close)


resilient = _target(True)
fragile = _target(False)
