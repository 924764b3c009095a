"""ProducerPool: several KafkaProducers behind one send, grown, shrunk and healed by pool_policy.

Why a pool: aiokafka keeps one produce request in flight per broker connection, so one producer's
throughput is bounded by a batch per round trip; on a slow broker N producers (N connections) send N
batches per round trip. And a producer whose connection is wedged (a half-open TCP connection: no
RST, no FIN) stalls every send given to it until its deadline; a pool routes around it and replaces
it. The measured figure that justifies it (and where it does not help) is in the README
(bench/pool_bench.py).

What is guaranteed:
* ``enqueue``/``send`` resolve like KafkaProducer's (acked, failed or unknown, within the member's
  ``send_deadline_s``); nothing is dropped: a member retired or replaced is taken out of routing
  at once, its outstanding sends are awaited (bounded by its deadline, by which KafkaProducer
  resolves each as unknown if unacknowledged) and only then is it stopped;
* every member records into the pool's one DeliveryLedger, so what a replaced member acked stays
  in ``pool.ledger`` (nothing to merge, nothing lost on replacement);
* a send goes to the routable member with the fewest sends in flight, preferring members whose
  breaker is not OPEN (an OPEN one would fail the send at once) and never a member being retired;
  order per key is therefore NOT kept across members (a single producer keeps it per partition);
* every decision (scale up, scale down, replace, and a start that failed) is handed to ``on_event``
  as a PoolEvent before it is carried out, so a scenario's history records it (an on_event that
  raises is logged, and the decision still carried out);
* health per member (``health()``) and statistics per topic (``topic_stats()``: sent, acked,
  unknown, failed, p95 latency of the last ``LATENCY_WINDOW`` resolved sends; a member's p95, which
  the policy reads, only of those resolved in the last ``PoolConfig.recent_s``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import time
from typing import Callable

from ..errors import KafkaUnavailable, LabError
from ..resilience import CircuitBreaker
from .envelope import Envelope, encode as encode_envelope
from .kafka import KafkaProducer, KafkaSettings, await_delivery
from .ledger import ACKED, FAILED, UNKNOWN, Delivery, DeliveryLedger
from .observability import log_event
from .pool_policy import REPLACE, SCALE_DOWN, SCALE_UP, Decision, MemberStats, PoolConfig, decide

log = logging.getLogger("lab.clients.producer_pool")

#: Resolved sends per member and per topic whose latencies make the recent p95.
LATENCY_WINDOW = 256


@dataclasses.dataclass(frozen=True)
class PoolEvent:
    """One scaling decision of the pool, as the history records it."""

    kind: str  # scale_up | scale_down | replace | start_failed
    reason: str
    member: str | None  # the member retired or replaced
    new_member: str | None  # the member started (scale_up, replace)
    size_before: int
    size_after: int
    at: float  # time.monotonic()


@dataclasses.dataclass(frozen=True)
class MemberHealth:
    member: str
    state: str  # "healthy" | "wedged" | "open" | "retiring"
    breaker: str
    in_flight: int
    sent: int
    acked: int
    unknown: int
    failed: int
    p95_s: float | None
    since_progress_s: float


@dataclasses.dataclass(frozen=True)
class TopicStats:
    sent: int
    acked: int
    unknown: int
    failed: int
    p95_s: float | None


def p95(samples: "collections.deque[tuple[float, float]]", since: float = float("-inf")) -> float | None:
    """The p95 of the latencies (``(resolved_at, latency_s)`` pairs) resolved at or after ``since``."""
    ordered = sorted(latency_s for resolved_at, latency_s in samples if resolved_at >= since)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class _Member:
    """One producer of the pool and what the pool measures of it."""

    def __init__(self, name: str, producer: KafkaProducer, now: float) -> None:
        self.name, self.producer = name, producer
        self.outstanding: set[asyncio.Future[Delivery]] = set()
        self.last_used_at = now
        self.last_progress_at = now
        self.open_since: float | None = None
        self.latencies: collections.deque[tuple[float, float]] = collections.deque(maxlen=LATENCY_WINDOW)
        self.counts = {"sent": 0, ACKED: 0, UNKNOWN: 0, FAILED: 0}
        self.retiring = False
        self.starting = 0  # sends whose KafkaProducer.enqueue has not returned yet (waiting for a new batch)

    def stats(self, now: float, recent_s: float) -> MemberStats:
        return MemberStats(self.name, len(self.outstanding), self.last_used_at, self.last_progress_at,
                           self.open_since, p95(self.latencies, now - recent_s))


class _Topic:
    def __init__(self) -> None:
        self.counts = {"sent": 0, ACKED: 0, UNKNOWN: 0, FAILED: 0}
        self.latencies: collections.deque[tuple[float, float]] = collections.deque(maxlen=LATENCY_WINDOW)


ProducerFactory = Callable[[KafkaSettings, CircuitBreaker | None, DeliveryLedger], KafkaProducer]


def _default_factory(settings: KafkaSettings, breaker: CircuitBreaker | None,
                     ledger: DeliveryLedger) -> KafkaProducer:
    return KafkaProducer(settings, breaker=breaker, ledger=ledger)


class ProducerPool:
    """KafkaProducers behind one ``enqueue``; see the module docstring for what it guarantees.

    ``settings`` is each member's KafkaSettings; a member's client id is ``<client_id>-<n>`` (n counts
    every member the pool ever started), so its connections can be told apart on the wire.
    ``breaker_for(member_name)`` gives a member its breaker (default: KafkaProducer's own).
    """

    def __init__(self, settings: KafkaSettings, config: PoolConfig | None = None,
                 on_event: Callable[[PoolEvent], None] | None = None,
                 breaker_for: Callable[[str], CircuitBreaker | None] | None = None,
                 ledger: DeliveryLedger | None = None, factory: ProducerFactory | None = None) -> None:
        self.settings = settings
        self.config = config or PoolConfig()
        self.on_event = on_event
        self.breaker_for = breaker_for
        self.ledger = ledger if ledger is not None else DeliveryLedger()
        self.factory = factory or _default_factory
        self.members: list[_Member] = []
        self.events: list[PoolEvent] = []
        self._topics: dict[str, _Topic] = {}
        self._numbers = itertools.count(1)
        self._retiring: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._last_resize_at = float("-inf")
        self._last_replace_at = float("-inf")
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> "ProducerPool":
        try:
            for _ in range(self.config.min_size):
                self.members.append(await self._start_member())
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.ensure_future(self._supervise())
        return self

    async def __aenter__(self) -> "ProducerPool":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _start_member(self) -> _Member:
        name = f"{self.settings.client_id}-{next(self._numbers)}"
        settings = dataclasses.replace(self.settings, client_id=name)
        breaker = self.breaker_for(name) if self.breaker_for is not None else None
        producer = self.factory(settings, breaker, self.ledger)
        await producer.start()
        return _Member(name, producer, time.monotonic())

    async def stop(self) -> None:
        """Stop deciding, wait (bounded by the deadline) for every outstanding send, stop every member."""
        self._closed = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        members, self.members = self.members, []
        await asyncio.gather(*(self._retire(m) for m in members), *self._retiring, return_exceptions=True)

    # -- sending --------------------------------------------------------------------------------

    def _route(self) -> _Member:
        best: _Member | None = None
        best_key: tuple[bool, bool, int] | None = None
        for member in self.members:  # ties go to the first: the others stay idle and may be retired
            key = (member.producer.breaker.state.value == "OPEN", member.starting > 0, len(member.outstanding))
            if best_key is None or key < best_key:
                best, best_key = member, key
        if best is None:
            raise KafkaUnavailable("the producer pool has no member (stopped, or every start failed)")
        return best

    async def enqueue(self, topic: str, value: bytes, key: bytes | None = None, message_id: str | None = None,
                      headers: list[tuple[str, bytes]] | None = None) -> "asyncio.Future[Delivery]":
        """Hand one message to the least-loaded member; a future of its Delivery (as KafkaProducer.enqueue).

        It waits as the member's enqueue does (for a new batch, until the partition's previous batch has
        gone): that is the pool's backpressure. Meanwhile other callers are routed to members that are
        not waiting (bench/pool_bench.py measured a task per send instead, so that no caller ever waits
        behind one member: a third of one producer's throughput, every send taking the slow path).
        """
        if self._closed:
            raise KafkaUnavailable("the producer pool is stopped")
        member = self._route()
        now = time.monotonic()
        member.last_used_at = now
        if not member.outstanding:
            member.last_progress_at = now  # a stall is measured from the first send it waits for
        stats = self._topics.get(topic)
        if stats is None:
            stats = self._topics[topic] = _Topic()
        member.starting += 1
        try:  # a cancelled caller: KafkaProducer.enqueue made no send (and no ledger entry) of it
            future = await member.producer.enqueue(topic, value, key, message_id, headers)
        finally:
            member.starting -= 1
        stats.counts["sent"] += 1
        member.counts["sent"] += 1
        if future.done():
            self._resolved(member, stats, future)
        else:
            member.outstanding.add(future)
            future.add_done_callback(lambda f: self._resolved(member, stats, f))
        return future

    def _resolved(self, member: _Member, stats: _Topic, future: "asyncio.Future[Delivery]") -> None:
        member.outstanding.discard(future)
        if future.cancelled():  # KafkaProducer never cancels it; only a loop torn down under it could
            return
        delivery = future.result()
        latency_s = delivery.resolved_at - delivery.sent_at
        member.counts[delivery.status] += 1
        stats.counts[delivery.status] += 1
        member.latencies.append((delivery.resolved_at, latency_s))
        stats.latencies.append((delivery.resolved_at, latency_s))
        if delivery.status == ACKED:
            member.last_progress_at = delivery.resolved_at

    async def send(self, topic: str, value: bytes, key: bytes | None = None, message_id: str | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> Delivery:
        return await await_delivery(await self.enqueue(topic, value, key, message_id, headers))

    async def send_envelope(self, topic: str, envelope: Envelope, key: bytes | None = None) -> Delivery:
        """As KafkaProducer.send_envelope: recorded under the envelope's id, keyed by it unless given."""
        value, headers = encode_envelope(envelope)
        return await self.send(topic, value, key if key is not None else envelope.id.encode(), envelope.id, headers)

    # -- deciding -------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a decision that failed is retried next tick, never the end of the pool
                log_event(log, logging.WARNING, "producer pool tick failed", error=repr(err))

    def _observe_breakers(self, now: float) -> None:
        for member in self.members:
            if member.producer.breaker.state.value == "OPEN":
                if member.open_since is None:
                    member.open_since = now
            else:
                member.open_since = None

    async def tick(self) -> list[Decision]:
        """Measure, decide and act once (the supervisor calls it every ``tick_s``)."""
        now = time.monotonic()
        self._observe_breakers(now)
        members = [m.stats(now, self.config.recent_s) for m in self.members]
        decisions = decide(now, members, self.config, self._last_resize_at, self._last_replace_at)
        for decision in decisions:
            if self._closed:
                break
            await self._apply(decision)
        return decisions

    async def _apply(self, decision: Decision) -> None:
        size = len(self.members)
        if decision.kind == SCALE_DOWN:
            member = self._member(decision.member)
            if member is None:
                return
            self._emit(SCALE_DOWN, decision.reason, member.name, None, size, size - 1)
            self.members.remove(member)
            self._last_resize_at = time.monotonic()
            self._retire_later(member)
            return
        old = self._member(decision.member) if decision.kind == REPLACE else None
        if decision.kind == REPLACE:
            self._last_replace_at = time.monotonic()
            if old is None:
                return
        try:
            new = await self._start_member()
        except (LabError, OSError) as err:
            self._emit("start_failed", f"{decision.kind} ({decision.reason}): {err}", decision.member, None,
                       size, size)
            return
        if old is not None:
            self._emit(REPLACE, decision.reason, old.name, new.name, size, size)
            self.members[self.members.index(old)] = new
            self._retire_later(old)
        else:
            self._emit(SCALE_UP, decision.reason, None, new.name, size, size + 1)
            self.members.append(new)
            self._last_resize_at = time.monotonic()

    def _member(self, name: str | None) -> _Member | None:
        return next((m for m in self.members if m.name == name), None)

    def _emit(self, kind: str, reason: str, member: str | None, new_member: str | None, before: int,
              after: int) -> None:
        event = PoolEvent(kind, reason, member, new_member, before, after, time.monotonic())
        self.events.append(event)
        log_event(log, logging.INFO, "producer pool " + kind, reason=reason, member=member, new_member=new_member,
                  size=after)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as err:  # the record of a decision failing must not stop the decision
                log_event(log, logging.WARNING, "producer pool on_event failed", error=repr(err))

    def _retire_later(self, member: _Member) -> None:
        task = asyncio.ensure_future(self._retire(member))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, member: _Member) -> None:
        """Out of routing already; wait for its sends (each resolves by its deadline), then stop it."""
        member.retiring = True
        if member.outstanding:
            bound_s = member.producer.settings.send_deadline_s + 1.0
            await asyncio.wait(set(member.outstanding), timeout=bound_s)
        await member.producer.stop()

    # -- health and statistics -------------------------------------------------------------------

    def health(self) -> list[MemberHealth]:
        now = time.monotonic()
        out = []
        for member in self.members:
            stats = member.stats(now, self.config.recent_s)
            state = ("retiring" if member.retiring else "open" if member.open_since is not None
                     else "wedged" if stats.in_flight and now - stats.last_progress_at >= self.config.wedged_s
                     else "healthy")
            out.append(MemberHealth(member.name, state, member.producer.breaker.state.value, stats.in_flight,
                                    member.counts["sent"], member.counts[ACKED], member.counts[UNKNOWN],
                                    member.counts[FAILED], stats.p95_s, now - stats.last_progress_at))
        return out

    def topic_stats(self) -> dict[str, TopicStats]:
        return {topic: TopicStats(t.counts["sent"], t.counts[ACKED], t.counts[UNKNOWN], t.counts[FAILED],
                                  p95(t.latencies))
                for topic, t in self._topics.items()}

    def __len__(self) -> int:
        return len(self.members)


__all__ = ["LATENCY_WINDOW", "MemberHealth", "PoolConfig", "PoolEvent", "ProducerPool", "TopicStats", "p95"]
