"""Two targets (``lab.scenario.target.Target``): the lab's resilient clients, and the negative control.

The negative control is deliberately naive: a plain asyncpg pool and a plain
aiokafka producer, with no breaker and no timeouts. Every scenario must fail
against it; a check that passes there checks nothing. A mutant of the clients
(``lab.scenario.mutants``) is ``LabClients(mutant)``.

Both drive one lane per component the scenario exercises: ``PgLane`` (a query per
call) and ``KafkaLane`` (a send per call), or the scenario's own subclass of them
(``Scenario.pg_lane`` / ``kafka_lane``, e.g. ``lab.scenario.protocol_targets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import asyncpg
from aiokafka import AIOKafkaProducer

from ..clients import (ACKED, ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings, PostgresClient,
                       PostgresSettings, check_delivery)
from ..clients.envelope import Envelope, encode as encode_envelope, envelope_id
from ..clients.pg_errors import Phase, translated
from ..config import Settings
from ..errors import DeliveryNotAcked as DeliveryNotAcked  # re-exported: it lived here before lab/errors.py
from ..resilience import BreakerConfig, BreakerEvent, CircuitBreaker
from .evidence import ABSENT, OBSERVED
from .history import FAIL, OK, UNKNOWN, History
from .profile import ClientProfile  # noqa: F401  (re-exported: it lived here before)
from .target import RunContext

if TYPE_CHECKING:
    from .mutants import Mutant


#: Calls the latency probe makes after recovery at most, paced like the workload (its p90 is judged: one
#: scheduling stall on a shared machine, a 30-call maximum once read 195 ms against a 16 ms baseline, is not a
#: slow client). 40 at the workload's 25 ms pace is 1 s per run (100 made every pg scenario run 1.5 s longer, and
#: make test 15 minutes); the p90 of 40 leaves out the 4 slowest.
LATENCY_SAMPLES = 40
#: The latency probe starts calls for at most this long: a client still slow after recovery is judged on them.
LATENCY_BUDGET_S = 5.0
#: The probe's p90 may be this many times the baseline's p90, or LATENCY_FLOOR_S, whichever is larger.
LATENCY_FACTOR, LATENCY_FLOOR_S = 5.0, 0.02
#: Each of its calls' own bound (the negative control's plain pool has no timeout of its own).
LATENCY_CALL_BOUND_S = 5.0


def _record_transitions(breaker: CircuitBreaker, history: History, component: str) -> None:
    """Transitions, and every outcome the breaker itself recorded (its own counts: checks compare them with the
    calls made, so a breaker that counts what it should not is seen by what it did, not by how it was built)."""
    def on_transition(event: BreakerEvent) -> None:
        assert event.from_state is not None and event.to_state is not None  # a transition names both
        history.add("breaker", OK, None, component=component, breaker=event.breaker,
                    **{"from": event.from_state.value}, to=event.to_state.value, reason=event.reason)

    def on_outcome(event: BreakerEvent) -> None:
        history.add("outcome", FAIL if event.kind == "error" else OK, component=component,
                    duration_s=event.duration_s, error_class=type(event.error).__name__ if event.error else None)

    breaker.add_listener(on_transition, ("state_transition",))
    breaker.add_listener(on_outcome, ("success", "error"))


def _breaker(mutant: "Mutant | None", name: str, config: BreakerConfig) -> CircuitBreaker:
    if mutant is None:
        return CircuitBreaker(name, config)
    return mutant.breaker_class(name, mutant.breaker_config(config))


class _ClientLane:
    """What both lanes declare: the lab's clients, whose breaker is observed and whose outcomes are recorded
    (the negative control's breaker: absent)."""

    name = ""
    errors = "lab"

    def __init__(self, run: RunContext, negative: bool, mutant: "Mutant | None") -> None:
        self.settings, self.profile, self.history, self.negative = run.settings, run.profile, run.history, negative
        self.mutant = mutant
        self.covers = (self.name,)
        self.breakers = {self.name: ABSENT if negative else OBSERVED}
        self.outcomes = () if negative else (self.name,)


class PgLane(_ClientLane):
    """One query per call (the scenario's ``pg_query``) on the resilient PostgresClient or a plain pool."""

    name = "pg"

    def __init__(self, run: RunContext, negative: bool = False, mutant: "Mutant | None" = None,
                 application_name: str | None = None) -> None:
        super().__init__(run, negative, mutant)
        self.query, self.interval_s = run.scenario.pg_query, run.scenario.interval_s
        self.application_name = application_name or f"chaoslab-{uuid.uuid4().hex[:6]}"
        self.client: PostgresClient | None = None
        self.pool: asyncpg.Pool | None = None
        self.breaker: CircuitBreaker | None = None

    @property
    def direct_dsn(self) -> str:
        return self.settings.pg_direct_dsn

    async def start(self) -> None:
        p = self.profile
        if self.negative:
            self.pool = await asyncpg.create_pool(self.settings.pg_dsn, min_size=p.pool_size, max_size=p.pool_size,
                                                  command_timeout=None,
                                                  server_settings={"application_name": self.application_name})
            return
        from ..clients import postgres

        self.breaker = _breaker(self.mutant, f"pg:{self.application_name}",
                                p.breaker(postgres.RECORDED, postgres.IGNORED))
        _record_transitions(self.breaker, self.history, self.name)
        client_class = self.mutant.pg_client_class if self.mutant is not None else PostgresClient
        tune = self.mutant.pg_settings if self.mutant is not None else (lambda settings: settings)
        self.client = await client_class(tune(PostgresSettings(
            self.settings.pg_dsn, min_size=p.pool_size, max_size=p.pool_size, connect_timeout_s=p.connect_timeout_s,
            acquire_timeout_s=p.acquire_timeout_s, command_timeout_s=p.command_timeout_s, close_timeout_s=2.0,
            validate_idle_after_s=1.0, validation_timeout_s=0.5, application_name=self.application_name)),
            breaker=self.breaker).start()

    def state(self) -> str:
        return self.breaker.state.value if self.breaker else "NONE"

    async def op(self, sequence: int) -> None:
        if self.client is not None:
            await self.client.fetchval(self.query)
        else:
            async with self.pool.acquire() as conn:  # type: ignore[union-attr]
                await conn.fetchval(self.query)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 3)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.pool.terminate()

    async def _probe_call(self, query: str) -> Any:
        """One call the way the workload makes it: through the client (its breaker, its timeouts), or the plain
        pool."""
        if self.client is not None:
            return await self.client.fetchval(query)
        assert self.pool is not None  # the negative control's plain pool
        async with self.pool.acquire() as conn:
            return await conn.fetchval(query)

    async def _latency_call(self, index: int) -> None:
        """One call of the latency probe: what the workload's ``op`` does (here, the scenario's query)."""
        await self._probe_call(self.query)

    def _latency_call_is(self) -> str:
        """What ``_latency_call`` runs, for the probe's evidence."""
        return repr(self.query)

    async def probes(self, baseline_p99_s: float | None) -> None:
        """Pool recovered (``pg.pool``), then latency back to baseline (``pg.latency``): each probe is judged on
        its own, so a pool that failed its probe does not leave the latency unjudged."""
        await self._pool_probe()
        if baseline_p99_s:
            await self._latency_probe(baseline_p99_s)

    async def _pool_probe(self) -> None:
        """idle == size, pool-size concurrent SELECT 1, no leaked sessions."""
        history, p = self.history, self.profile
        try:
            results = await asyncio.wait_for(asyncio.gather(*(self._probe_call("SELECT 1")
                                                              for _ in range(p.pool_size)),
                                                            return_exceptions=True), 5)
            await asyncio.sleep(0.1)
            pool = self.client.pool if self.client is not None else self.pool
            size, idle = pool.get_size(), pool.get_idle_size()  # type: ignore[union-attr]
            sessions = await _server_sessions(self.direct_dsn, self.application_name)
        except Exception as err:
            history.add("probe", FAIL, name="pg.pool", evidence=f"probe failed: {type(err).__name__}: {err}")
            return
        problems = []
        if results != [1] * p.pool_size:
            errors = sorted({type(r).__name__ for r in results if isinstance(r, BaseException)})
            problems.append(f"{sum(r != 1 for r in results)} of {p.pool_size} concurrent SELECT 1 failed {errors}")
        if idle != size:
            problems.append(f"idle {idle} != size {size}")
        if sessions > size:
            problems.append(f"{sessions - size} leaked server sessions ({sessions} for a pool of {size})")
        history.add("probe", FAIL if problems else OK, name="pg.pool",
                    evidence="; ".join(problems) or f"idle == size == {size}, {p.pool_size} concurrent SELECT 1 ok, "
                                                    f"no leaked sessions ({sessions})")

    async def _latency_probe(self, baseline_p99_s: float) -> None:
        """Latency back to baseline, measured the way the baseline was (issue 11): the workload's call
        (``_latency_call``: the scenario's ``pg_query``, or a subclass's own operation), started one every
        ``interval_s`` with at most ``in_flight`` at once like the workload, each call timed from its start to its
        end like a workload ``op``, and the same percentile (the p90, by ``percentile``) taken of the probe's calls
        and of the baseline phase's successful calls; it fails above
        LATENCY_FACTOR times the baseline's p90, or LATENCY_FLOOR_S.

        Bounded in count and time: calls start for at most LATENCY_BUDGET_S (LATENCY_SAMPLES at most), each is
        bounded by LATENCY_CALL_BOUND_S; a client that stays slow after recovery is judged on the calls the
        budget held. ``baseline_p99_s`` (the runner's) only says a baseline exists; the baseline's p90 is taken
        here from the same ``op`` events.

        Why the p90, not the p99: the p99 of 100 calls is the second slowest, which two scheduler stalls on a
        loaded machine decide (seen: p50 9 ms, two calls over 400 ms, on a machine at load 11 on 2 cores). A
        client that is still slow after recovery is slow on many calls — a backoff never reset on every one,
        one pooled connection of five still slow on a fifth of them — and that moves the p90.
        """
        history = self.history
        baseline = baseline_latencies(history, self.name)
        if not baseline:
            return
        latencies: list[float] = []
        errors: list[BaseException] = []

        async def one(index: int, started: float) -> None:
            try:
                await asyncio.wait_for(self._latency_call(index), LATENCY_CALL_BOUND_S)
            except Exception as err:  # a failing call after recovery fails the probe, not the whole run
                errors.append(err)
                return
            latencies.append(time.monotonic() - started)

        active: set[asyncio.Task[None]] = set()
        calls, deadline = 0, time.monotonic() + LATENCY_BUDGET_S
        while calls < LATENCY_SAMPLES and time.monotonic() < deadline:
            if len(active) < self.profile.in_flight:
                calls += 1
                task = asyncio.ensure_future(one(calls, time.monotonic()))
                active.add(task)
                task.add_done_callback(active.discard)
            await asyncio.sleep(self.interval_s)
        if active:
            await asyncio.wait(list(active))  # each bounded by LATENCY_CALL_BOUND_S
        if errors or not latencies:
            kinds = sorted({f"{type(err).__name__}: {err}"[:120] for err in errors})
            history.add("probe", FAIL, name="pg.latency", evidence=f"{len(errors)} of {calls} calls failed after "
                                                                    f"recovery: {kinds}")
            return
        latencies.sort()
        p90, base_p90 = percentile(latencies, 0.90), percentile(baseline, 0.90)
        bound = max(LATENCY_FACTOR * base_p90, LATENCY_FLOOR_S)
        history.add("probe", OK if p90 <= bound else FAIL, name="pg.latency",
                    evidence=f"p90 {p90 * 1000:.1f} ms of {len(latencies)} calls after recovery (p50 "
                             f"{percentile(latencies, 0.5) * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms) vs "
                             f"baseline p90 {base_p90 * 1000:.1f} ms of {len(baseline)} calls (bound "
                             f"{LATENCY_FACTOR:g}x or {LATENCY_FLOOR_S * 1000:.0f} ms = {bound * 1000:.1f} ms); both "
                             f"{self._latency_call_is()}, one every {self.interval_s * 1000:g} ms, at most "
                             f"{self.profile.in_flight} at once")


def percentile(sorted_latencies: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted latencies, nearest rank below (the runner's baseline p99 is taken the same
    way)."""
    return sorted_latencies[int(q * (len(sorted_latencies) - 1))]


def baseline_latencies(history: History, lane: str) -> list[float]:
    """The baseline phase's successful workload calls of ``lane``, sorted: what the latency probe compares with."""
    window = history.phase("baseline")
    if window is None:
        return []
    return sorted(e.get("latency_s") for e in history.of("op") if e.get("lane") == lane and e.status == OK
                  and window[0] <= e.t <= window[1])


async def _server_sessions(dsn: str, application_name: str, timeout_s: float = 3.0) -> int:
    """The server's sessions for ``application_name``, on the lab's own bounded connection (errors: LabErrors)."""
    with translated("the probe's connection", Phase.CONNECT):
        conn = await asyncpg.connect(dsn, timeout=timeout_s, server_settings={"application_name": "chaoslab-probe"})
    try:
        with translated("counting the server's sessions"):
            count: int = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                                             application_name, timeout=timeout_s)
            return count
    finally:
        conn.terminate()


class KafkaLane(_ClientLane):
    """One send per call on the resilient KafkaProducer or a plain aiokafka producer; with the scenario's
    ``consumer_session_s``, a consumer-group member reads along."""

    name = "kafka"

    def __init__(self, run: RunContext, negative: bool = False, mutant: "Mutant | None" = None) -> None:
        super().__init__(run, negative, mutant)
        settings, history, consumer_session_s = run.settings, run.history, run.scenario.consumer_session_s
        self.sent = 0  # sends handed to the producer: the ledger must hold exactly one entry for each
        self.topic = f"chaos-{uuid.uuid4().hex[:8]}"
        self.producer: KafkaProducer | None = None
        self.raw: AIOKafkaProducer | None = None
        self.breaker: CircuitBreaker | None = None
        self.acked: list[str] = []
        group_class = mutant.group_consumer_class if mutant is not None else GroupConsumer
        self.group = group_class(settings, self.topic, consumer_session_s, history) if consumer_session_s else None

    async def start(self) -> None:
        p = self.profile
        if self.group is not None:
            await self.group.start()  # the consumer is the same in both modes: the producer is under test
        if self.negative:
            self.raw = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                        enable_idempotence=False, request_timeout_ms=120_000)
            await self.raw.start()
            return
        from ..clients import kafka

        self.breaker = _breaker(self.mutant, f"kafka:{self.topic}", p.breaker(kafka.RECORDED, kafka.IGNORED))
        _record_transitions(self.breaker, self.history, self.name)
        kafka_settings = KafkaSettings(self.settings.kafka_bootstrap, send_deadline_s=p.send_deadline_s,
                                       request_timeout_s=p.request_timeout_s, stop_timeout_s=2.0)
        producer_class = KafkaProducer
        if self.mutant is not None:
            kafka_settings, producer_class = (self.mutant.kafka_settings(kafka_settings),
                                              self.mutant.kafka_producer_class)
        self.producer = await producer_class(kafka_settings, breaker=self.breaker).start()

    def state(self) -> str:
        return self.breaker.state.value if self.breaker else "NONE"

    async def op(self, sequence: int) -> None:
        message_id = f"{self.topic}-{sequence:07d}"
        if self.producer is not None:
            self.sent += 1
            delivery = await self.producer.send_envelope(self.topic, self._event(message_id))
            if delivery.status != ACKED:
                raise DeliveryNotAcked(delivery.error_class or delivery.status)
        else:
            value, headers = encode_envelope(self._event(message_id))
            await self.raw.send_and_wait(self.topic, value, key=message_id.encode(),  # type: ignore[union-attr]
                                         headers=headers)
            self.acked.append(message_id)

    def _event(self, message_id: str) -> Envelope:
        """Each operation's message travels in an envelope; the read-back compares envelope ids."""
        return Envelope(type="chaoslab.operation", source=f"lab.target.{self.name}", payload=b"chaos", id=message_id)

    async def close(self) -> None:
        if self.group is not None:
            await self.group.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.raw is not None:
            try:
                await asyncio.wait_for(self.raw.stop(), 3)
            except (asyncio.TimeoutError, Exception):
                pass

    async def probes(self, baseline_p99_s: float | None) -> None:
        """No acknowledged message lost: the whole topic read back and compared with the ledger."""
        try:
            async with KafkaConsumer(ConsumerSettings(self.settings.kafka_bootstrap)) as consumer:
                records = await consumer.read_all(self.topic, timeout_s=10)
        except Exception as err:
            self.history.add("probe", FAIL, name="kafka.readback", evidence=f"read-back failed: {err}")
            return
        ids = [envelope_id(r.headers) or "<no envelope id>" for r in records]
        acked = self.producer.ledger.acked_ids(self.topic) if self.producer is not None else self.acked
        if self.producer is not None:
            ledger = self.producer.ledger
            report = check_delivery(ledger, ids, topic=self.topic)
            verdict = (OK if report.complete else UNKNOWN) if report.ok else FAIL
            self.history.add("probe", verdict, name="kafka.readback", evidence=report.summary())
            entries = sum(1 for d in ledger.entries if d.topic == self.topic)
            ledger_verdict = (OK if entries == self.sent else FAIL) if ledger.evicted == 0 else UNKNOWN
            self.history.add("probe", ledger_verdict, name="kafka.ledger",
                             evidence=f"{self.sent} sends, {entries} ledger entries kept, {ledger.evicted} evicted "
                                      f"({ledger.counts()})")
        else:
            missing = set(self.acked) - set(ids)
            self.history.add("probe", FAIL if missing else OK, name="kafka.readback",
                             evidence=f"{len(self.acked)} acked by raw aiokafka, {len(missing)} missing")
        if self.group is not None:
            await self.group.probes(acked)


class GroupConsumer:
    """A consumer-group member reading the workload's topic throughout the scenario."""

    def __init__(self, settings: Settings, topic: str, session_s: float, history: History) -> None:
        self.settings, self.topic, self.session_s, self.history = settings, topic, session_s, history
        self.consumer: Any = None
        self.consumed: list[str] = []
        self.members: list[tuple[str | None, int]] = []
        self._task: asyncio.Task[None] | None = None

    def _membership(self) -> tuple[str | None, int]:
        coordinator = getattr(self.consumer, "_coordinator", None)  # aiokafka has no public accessor
        return getattr(coordinator, "member_id", None), getattr(coordinator, "generation", -1)

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.settings.kafka_bootstrap, group_id=f"group-{self.topic}",
            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=int(self.session_s * 1000),
            heartbeat_interval_ms=int(self.session_s * 1000 / 5), request_timeout_ms=int(self.session_s * 1000) + 2000)
        await asyncio.wait_for(self.consumer.start(), 10)
        self._task = asyncio.ensure_future(self._consume())
        deadline = time.monotonic() + 10
        while not self.consumer.assignment() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.members.append(self._membership())

    async def _consume(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    self.consumed += [envelope_id(r.headers) or "<no envelope id>" for r in records]
                if batches:
                    await asyncio.wait_for(self.consumer.commit(), 5)
            except asyncio.CancelledError:
                raise
            except Exception:  # an outage: keep polling, aiokafka reconnects
                await asyncio.sleep(0.2)
            membership = self._membership()
            if membership != self.members[-1] if self.members else False:
                self.members.append(membership)
                self.history.add("probe", OK, name="kafka.membership", evidence=f"member {membership}")

    async def probes(self, acked: list[str]) -> None:
        """Every acked message consumed (``kafka.consumed``); the membership kept (``kafka.kept_membership``) or
        changed (``kafka.rejoined``): both recorded, each failing where the other passes, so a scenario that
        expects one of them fails when the other happened."""
        deadline = time.monotonic() + 10
        while set(acked) - set(self.consumed) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        missing = set(acked) - set(self.consumed)
        duplicates = len(self.consumed) - len(set(self.consumed))
        self.history.add("probe", FAIL if missing else OK, name="kafka.consumed",
                         evidence=f"{len(acked)} acked, {len(set(self.consumed))} consumed by the group member, "
                                  f"{len(missing)} never consumed, {duplicates} consumed twice")
        first, last = self.members[0], self._membership()
        evidence = f"member/generation {first} -> {last}"
        self.history.add("probe", OK if first == last else FAIL, name="kafka.kept_membership", evidence=evidence)
        self.history.add("probe", OK if first != last else FAIL, name="kafka.rejoined", evidence=evidence)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.consumer is not None:
            try:
                await asyncio.wait_for(self.consumer.stop(), 5)
            except (asyncio.TimeoutError, Exception):
                pass


class LabClients:
    """The lab's resilient clients (``lab.clients``), or a ``mutant`` of them: the Target every scenario must
    pass against (and every mutant's listed checks fail)."""

    negative = False

    def __init__(self, mutant: "Mutant | None" = None) -> None:
        self.mutant = mutant
        self.name = f"mutant {mutant.name}" if mutant is not None else "lab clients"
        self._lanes: list[PgLane | KafkaLane] = []

    async def start(self, run: RunContext) -> list[PgLane | KafkaLane]:
        scenario = run.scenario
        if "pg" in scenario.components:
            self._lanes.append((scenario.pg_lane or PgLane)(run, self.negative, self.mutant))
        if "kafka" in scenario.components:
            self._lanes.append((scenario.kafka_lane or KafkaLane)(run, self.negative, self.mutant))
        for lane in self._lanes:
            await lane.start()
        return list(self._lanes)

    async def probes(self, baseline_p99_s: Mapping[str, float | None]) -> None:
        for lane in self._lanes:
            await lane.probes(baseline_p99_s.get(lane.name))

    async def close(self) -> None:
        for lane in self._lanes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lane.close(), 5)


class NegativeControl(LabClients):
    """A plain asyncpg pool and a plain aiokafka producer: no breaker, no timeouts. Every scenario must FAIL
    against it."""

    negative = True

    def __init__(self) -> None:
        super().__init__(None)
        self.name = "negative control"
