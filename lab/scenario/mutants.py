"""Mutant targets: the resilient clients and breaker with exactly one property broken.

A check that no mutant can fail checks nothing, so every scenario check is run
against these (`python -m lab run SCENARIO --mutant NAME`, `lab run --mutants`)
and the matrix in ``lab/scenario/matrix.py`` says which check must fail on which.
Users validate their own checks the same way.

Each mutant configures or wraps the real clients and breaker (a subclass, a
changed setting, a wrapper): the clients themselves are never edited, so what
runs is the shipped code with one deliberate fault in it. Guaranteed: a mutant
changes one property and nothing else; ``LabClients(mutant)`` runs it (``LabClients()``: none).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any, AsyncIterator, Callable

import asyncpg

from ..clients import DeliveryLedger, KafkaProducer, KafkaSettings, PostgresClient, PostgresSettings
from ..clients.envelope import Envelope, encode as encode_envelope
from ..clients.pg_errors import translated
from ..clients.ledger import ACKED as DELIVERY_ACKED, UNKNOWN as DELIVERY_UNKNOWN
from ..clients.producer_pool import PoolConfig, ProducerPool
from ..errors import DatabaseUnavailable, LabError, QueryTimeout, UsageError
from ..resilience import BreakerConfig, BreakerState, CircuitBreaker
from ..resilience.retry import RetryPolicy
from ..resilience.states import HalfOpen
from .targets import GroupConsumer


def _same(value: Any) -> Any:
    return value


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One property of the resilient target, broken; the fields say how the target is built."""

    name: str
    breaks: str  # the property, in a sentence
    breaker_class: type[CircuitBreaker] = CircuitBreaker
    breaker_config: Callable[[BreakerConfig], BreakerConfig] = _same
    pg_client_class: type[PostgresClient] = PostgresClient
    pg_settings: Callable[[PostgresSettings], PostgresSettings] = _same
    kafka_settings: Callable[[KafkaSettings], KafkaSettings] = _same
    kafka_producer_class: type[KafkaProducer] = KafkaProducer
    group_consumer_class: type[GroupConsumer] = GroupConsumer
    pool_config: Callable[[PoolConfig], PoolConfig] = _same  # the producer pool's (lab.scenario.pool_lane)
    pool_class: type[ProducerPool] = ProducerPool


# -- the breaker ---------------------------------------------------------------------------------------------------

def _threshold_exclusive(config: BreakerConfig) -> BreakerConfig:
    """A rate must exceed the threshold, not reach it (`>` for `>=`): the smallest step above it. (A 100%
    threshold stays: a config cannot say "above 100%", and no rate exceeds it anyway.)"""
    def above(pct: float) -> float:
        return pct + 1e-9 if pct < 100 else pct

    return dataclasses.replace(config, failure_rate_threshold=above(config.failure_rate_threshold),
                               slow_call_rate_threshold=above(config.slow_call_rate_threshold))


class _ExtraPermitHalfOpen(HalfOpen):
    """The HALF_OPEN state with one trial permit more than configured."""

    __slots__ = ()

    def enter(self, now: float) -> None:
        super().enter(now)
        self.permits_left += 1


class ExtraPermitBreaker(CircuitBreaker):
    """HALF_OPEN hands out one trial permit more than configured (its decision still waits for the configured
    number of trial outcomes)."""

    states = {**CircuitBreaker.states, BreakerState.HALF_OPEN: _ExtraPermitHalfOpen}


class SkipHalfOpenBreaker(CircuitBreaker):
    """When the wait in OPEN ends the breaker goes straight back to CLOSED, without trial calls."""

    def _transition(self, to: BreakerState, reason: str) -> None:
        if to is BreakerState.HALF_OPEN and reason != "manual":
            to, reason = BreakerState.CLOSED, reason + " (HALF_OPEN skipped)"
        super()._transition(to, reason)


def _slow_calls_uncounted(config: BreakerConfig) -> BreakerConfig:
    return dataclasses.replace(config, slow_call_duration_s=float("inf"))


class CountsCancellationsBreaker(CircuitBreaker):
    """A cancelled call is recorded as a failure instead of neither success nor failure."""

    def on_error(self, error: BaseException, duration_s: float, generation: int | None = None,
                 permit: bool = True) -> None:
        if isinstance(error, asyncio.CancelledError):
            error = DatabaseUnavailable("cancelled (counted as a failure by the mutant)")
        super().on_error(error, duration_s, generation, permit)


# -- the Postgres client -------------------------------------------------------------------------------------------

def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class LeakOnCancelClient(PostgresClient):
    """A connection whose call is cancelled is never handed back to the pool."""

    async def _release(self, conn: Any, pid: int, broken: bool) -> None:
        if _cancelling():
            self._in_use.discard(pid)
            return
        await super()._release(conn, pid, broken)


class NeverReconnectsClient(PostgresClient):
    """The pool opens connections until it has opened ``max_size`` in its life and never again: a connection the
    server closed is never replaced (a hand-rolled pool of connections opened once at start)."""

    def __init__(self, settings: PostgresSettings, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(settings, breaker)
        self._opened = 0

    async def _on_new_connection(self, conn: Any) -> None:
        if self._opened >= self.settings.max_size:  # the mutation: no replacement is ever opened
            raise DatabaseUnavailable(f"this pool opened its {self.settings.max_size} connections and opens no "
                                      "replacement")
        self._opened += 1
        await super()._on_new_connection(conn)


class LeakOnErrorClient(PostgresClient):
    """A call that raised (failed or was cancelled) never hands its connection back to the pool, nor closes it:
    the release sits on the success path only."""

    async def _run(self, method: str, query: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        limit = timeout or self.settings.command_timeout_s

        async def operation() -> Any:
            conn, pid = await self._acquire()
            with translated(f"{method} (command timeout {limit:g}s)"):
                result = await getattr(conn, method)(query, *args, timeout=limit)
            await self._release(conn, pid, broken=False)  # the mutation: not in a ``finally``
            return result

        return await self.breaker.call(operation)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        conn, pid = await self._acquire()
        with translated("a command on a pooled connection"):
            yield conn
        await self._release(conn, pid, broken=False)  # the mutation: not in a ``finally``


class _UntranslatedClient(PostgresClient):
    """What the error table turned into a LabError reaches the caller raw when it is one of ``raw``: that row of
    the table is gone. The breaker still counts it (the error is unwrapped outside the breaker)."""

    raw: tuple[type[BaseException], ...] = ()

    async def _run(self, method: str, query: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        try:
            return await super()._run(method, query, args, timeout)
        except (DatabaseUnavailable, QueryTimeout) as err:
            if isinstance(err.__cause__, self.raw):
                raise err.__cause__ from None
            raise


class UntranslatedOSErrorClient(_UntranslatedClient):
    raw = (OSError,)


class UntranslatedTimeoutClient(_UntranslatedClient):
    raw = (TimeoutError,)


class UntranslatedDriverErrorClient(_UntranslatedClient):
    raw = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class NoTransactionRetryClient(PostgresClient):
    """A transaction the server rolled back (40001, 40P01) is not run again: its error reaches the caller."""

    async def run_transaction(self, work: Any, retry: RetryPolicy | None = None) -> Any:
        return await super().run_transaction(work, RetryPolicy(max_attempts=1))


class AutocommitTransactionClient(PostgresClient):
    """``transaction()`` hands out the connection without opening a transaction: each statement commits on its
    own, so a failed attempt leaves what it wrote before failing."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.breaker:
            async with self.connection() as conn:
                yield conn


class BackoffNeverResetClient(PostgresClient):
    """A backoff before each call that doubles on every call that did not succeed (failed, refused or cancelled),
    from FIRST_BACKOFF_S up to MAX_BACKOFF_S, and that a success never resets: after an outage every call is
    still successful, and still waits out the backoff first. The breaker times only the call itself (the wait
    comes before it), so only the latency after recovery shows it."""

    FIRST_BACKOFF_S = 0.3
    MAX_BACKOFF_S = 1.2

    def __init__(self, settings: PostgresSettings, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(settings, breaker)
        self.backoff_s = 0.0

    @contextlib.asynccontextmanager
    async def _backing_off(self) -> AsyncIterator[None]:
        try:
            await asyncio.sleep(self.backoff_s)
            yield
        except BaseException:
            self.backoff_s = min(self.MAX_BACKOFF_S, max(self.FIRST_BACKOFF_S, 2 * self.backoff_s))
            raise
        # the mutation: the resilient version would reset ``self.backoff_s = 0.0`` here, on success

    async def _run(self, method: str, query: str, args: tuple[Any, ...], timeout: float | None) -> Any:
        async with self._backing_off():
            return await super()._run(method, query, args, timeout)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self._backing_off():
            async with super().transaction() as conn:
                yield conn


def _pg_no_timeouts(settings: PostgresSettings) -> PostgresSettings:
    """Connect, acquire and command wait as long as raw asyncpg's defaults would let them (two minutes)."""
    return dataclasses.replace(settings, connect_timeout_s=120.0, acquire_timeout_s=120.0, command_timeout_s=120.0,
                               validation_timeout_s=120.0)


def _never_half_open(config: BreakerConfig) -> BreakerConfig:
    return dataclasses.replace(config, wait_duration_open_s=3600.0)


# -- the Kafka producer --------------------------------------------------------------------------------------------

class DropsUnknownProducer(KafkaProducer):
    """A send whose outcome is unknown (timed out in flight) is left out of the ledger (the producer's own, or the
    one a pool shares among its members): it goes to a ledger nobody reads."""

    def _resolve(self, message_id: str, topic: str, status: str, sent_at: float, error: BaseException | None = None,
                 partition: int | None = None, offset: int | None = None) -> Any:
        if status != DELIVERY_UNKNOWN:
            return super()._resolve(message_id, topic, status, sent_at, error, partition, offset)
        kept, self.ledger = self.ledger, DeliveryLedger()  # the mutation
        try:
            return super()._resolve(message_id, topic, status, sent_at, error, partition, offset)
        finally:
            self.ledger = kept


class UnknownAsAckedProducer(KafkaProducer):
    """A send whose outcome is unknown (timed out in flight) is reported and recorded as acknowledged."""

    def _resolve(self, message_id: str, topic: str, status: str, sent_at: float, error: BaseException | None = None,
                 partition: int | None = None, offset: int | None = None) -> Any:
        if status == DELIVERY_UNKNOWN:
            status = DELIVERY_ACKED  # the mutation
        return super()._resolve(message_id, topic, status, sent_at, error, partition, offset)


class UntranslatedKafkaProducer(KafkaProducer):
    """A failed or unknown send reports the driver's own error class (aiokafka's), not the LabError."""

    def _resolve(self, message_id: str, topic: str, status: str, sent_at: float, error: BaseException | None = None,
                 partition: int | None = None, offset: int | None = None) -> Any:
        delivery = super()._resolve(message_id, topic, status, sent_at, error, partition, offset)
        if error is not None and not isinstance(error, LabError):
            return delivery._replace(error_class=type(error).__name__)
        return delivery


class ResendsSlowAckProducer(KafkaProducer):
    """A send acknowledged only after the driver's retries (slower than RESEND_AFTER_S) is sent once more, as an
    application retry on a "slow" send would, without looking at the acknowledgement: a second copy of an
    acknowledged message, which the ledger (one entry, acked) cannot explain."""

    RESEND_AFTER_S = 0.2

    async def send_envelope(self, topic: str, envelope: Envelope, key: bytes | None = None) -> Any:
        delivery = await super().send_envelope(topic, envelope, key)
        producer = self._producer
        if delivery.status == DELIVERY_ACKED and delivery.resolved_at - delivery.sent_at > self.RESEND_AFTER_S \
                and producer is not None:
            value, headers = encode_envelope(envelope)
            with contextlib.suppress(Exception):  # the copy's fate is not recorded: that is the mutation
                await asyncio.wait_for(producer.send_and_wait(
                    topic, value, key=key if key is not None else envelope.id.encode(), headers=headers),
                    self.settings.send_deadline_s)
        return delivery


def _no_deadlines(settings: KafkaSettings) -> KafkaSettings:
    """Sends wait as long as raw aiokafka would (two minutes), not the scenario's deadline."""
    return dataclasses.replace(settings, send_deadline_s=240.0, request_timeout_s=120.0)


def _acks_none(settings: KafkaSettings) -> KafkaSettings:
    """acks=0: a send counts as acknowledged once aiokafka has written it, the broker never confirms it."""
    return dataclasses.replace(settings, acks=0)


# -- the consumer ----------------------------------------------------------------------------------------------

class DropsGroupConsumer(GroupConsumer):
    """Whenever its group coordinator is marked dead (any outage, however short) the member gives up its
    membership (member id and generation) and joins the group again as a new member once the coordinator
    answers: a rebalance where the session timeout says none is due.

    It hooks aiokafka's ``coordinator_dead`` itself: watching for a lost coordinator between polls misses an
    outage that a blocked commit spans (measured: membership kept in one run of five)."""

    async def start(self) -> None:
        await super().start()
        coordinator = getattr(self.consumer, "_coordinator", None)  # aiokafka has no public accessor
        if coordinator is not None:
            drop_membership_when_dead(coordinator)


def drop_membership_when_dead(coordinator: Any) -> None:
    """Make aiokafka's group ``coordinator`` forget its member id and generation each time it marks a known
    coordinator dead (the mutation: a lost coordinator taken for a lost membership)."""
    mark_dead = coordinator.coordinator_dead

    def coordinator_dead() -> None:
        known = coordinator.coordinator_id is not None
        mark_dead()
        if known:
            coordinator.reset_generation()

    coordinator.coordinator_dead = coordinator_dead


# -- the producer pool ---------------------------------------------------------------------------------------------

def _never_replaces(config: PoolConfig) -> PoolConfig:
    """A wedged member (or one whose breaker stays OPEN) is never replaced: both bounds a billion seconds."""
    return dataclasses.replace(config, wedged_s=1e9, open_s=1e9)


class LoadBlindPool(ProducerPool):
    """Sends go round robin over the members, whatever each has in flight or its breaker says."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turn = 0

    def _route(self) -> Any:
        super()._route()  # its error when the pool has no member
        self._turn += 1
        return self.members[self._turn % len(self.members)]


class FailoverOnlyPool(ProducerPool):
    """Sends go to the first member whose breaker is not OPEN, whatever it has in flight: a pool that fails over
    on errors only, so a member that stalls without failing keeps every send (and nothing else gets any)."""

    def _route(self) -> Any:
        super()._route()  # its error when the pool has no member
        return next((m for m in self.members if m.producer.breaker.state is not BreakerState.OPEN), self.members[0])


MUTANTS: dict[str, Mutant] = {m.name: m for m in (
    Mutant("breaker_threshold_exclusive", "a failure or slow-call rate must exceed its threshold, not reach it "
           "(`>` for `>=`)", breaker_config=_threshold_exclusive),
    Mutant("half_open_extra_permit", "HALF_OPEN admits one trial call more than its permits",
           breaker_class=ExtraPermitBreaker),
    Mutant("half_open_skipped", "OPEN goes straight back to CLOSED after its wait, with no trial calls",
           breaker_class=SkipHalfOpenBreaker),
    Mutant("slow_calls_uncounted", "slow calls are not counted as slow", breaker_config=_slow_calls_uncounted),
    Mutant("cancellations_counted", "a cancelled call counts as a failure", breaker_class=CountsCancellationsBreaker),
    Mutant("pool_leaks_on_cancel", "a cancelled call's connection is never returned to the pool",
           pg_client_class=LeakOnCancelClient),
    Mutant("breaker_never_half_opens", "the wait in OPEN never ends (an hour), so no trial call is ever made",
           breaker_config=_never_half_open),
    Mutant("pg_oserror_untranslated", "an OSError from the socket reaches the caller untranslated",
           pg_client_class=UntranslatedOSErrorClient),
    Mutant("pg_timeout_untranslated", "a TimeoutError (command or connect timeout) reaches the caller untranslated",
           pg_client_class=UntranslatedTimeoutClient),
    Mutant("pg_driver_error_untranslated", "asyncpg's own errors (PostgresError, InterfaceError, "
           "InternalClientError) reach the caller untranslated", pg_client_class=UntranslatedDriverErrorClient),
    Mutant("pg_backoff_never_reset", "a backoff before each call grows on every failure and is never reset by a "
           "success: calls succeed after recovery, but slowly", pg_client_class=BackoffNeverResetClient),
    Mutant("pool_never_reconnects", "the pool never replaces a connection the server closed (it opens at most its "
           "size in its life)", pg_client_class=NeverReconnectsClient),
    Mutant("pool_leaks_on_error", "a call that raised never hands its connection back to the pool",
           pg_client_class=LeakOnErrorClient),
    Mutant("consumer_drops_group", "the group consumer leaves its group (new member id and generation) whenever "
           "its coordinator is lost, however short the outage", group_consumer_class=DropsGroupConsumer),
    Mutant("pg_no_timeouts", "connect, acquire and command wait two minutes, not the profile's timeouts",
           pg_settings=_pg_no_timeouts),
    Mutant("pg_transactions_not_retried", "a transaction the server rolled back (40001/40P01) is not run again",
           pg_client_class=NoTransactionRetryClient),
    Mutant("pg_transactions_autocommit", "a transaction's statements each commit on their own (no BEGIN/COMMIT)",
           pg_client_class=AutocommitTransactionClient),
    Mutant("kafka_errors_untranslated", "a failed send reports aiokafka's error class, not the LabError",
           kafka_producer_class=UntranslatedKafkaProducer),
    Mutant("producer_drops_unknown", "sends of unknown outcome are missing from the producer's ledger",
           kafka_producer_class=DropsUnknownProducer),
    Mutant("producer_unknown_as_acked", "a send of unknown outcome is reported (and recorded) as acknowledged",
           kafka_producer_class=UnknownAsAckedProducer),
    Mutant("producer_resends_slow_acks", "a send acknowledged after retries is sent once more (a duplicate of an "
           "acknowledged message)", kafka_producer_class=ResendsSlowAckProducer),
    Mutant("producer_no_deadline", "sends wait for the driver's own two-minute timeout, not the send deadline",
           kafka_settings=_no_deadlines),
    Mutant("producer_acks_none", "a send is acknowledged once written to the socket (acks=0), never confirmed by the "
           "broker", kafka_settings=_acks_none),
    Mutant("pool_never_replaces", "the producer pool never replaces a wedged member (or one whose breaker stays "
           "OPEN)", pool_config=_never_replaces),
    Mutant("pool_ignores_load", "the producer pool sends round robin, whatever each member has in flight",
           pool_class=LoadBlindPool),
    Mutant("pool_fails_over_on_errors_only", "the producer pool sends to its first member until that member's "
           "breaker opens, whatever it has in flight", pool_class=FailoverOnlyPool),
)}


def mutant(name: str | None) -> Mutant | None:
    """The mutant called ``name`` (None: the resilient target); a clear error for an unknown name."""
    if name is None:
        return None
    try:
        return MUTANTS[name]
    except KeyError:
        raise UsageError(f"unknown mutant {name!r}; available: {', '.join(MUTANTS)}") from None
