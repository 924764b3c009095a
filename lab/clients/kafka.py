"""KafkaProducer and KafkaConsumer over aiokafka, bounded and accountable.

Producer:
* ``send()`` always resolves within ``send_deadline_s`` to a Delivery
  (acked / failed / unknown, see ledger.py), recorded in ``producer.ledger``.
  It never raises for a delivery problem: the ledger is the record, and a
  delivery's ``error_class`` names the LabError (KafkaUnavailable, KafkaTimeout,
  CallNotPermitted) that kafka_errors.py's table makes of aiokafka's error;
* a circuit breaker around sends: while it is open, sends fail at once
  (status failed, error CallNotPermitted) instead of queueing behind an outage;
* ``stop()`` returns within ``stop_timeout_s`` even during an outage (aiokafka's
  own stop waits to flush); what was still pending resolves as unknown;
* pipelined (``enqueue``), it keeps up with raw aiokafka: it fills aiokafka's
  batches itself and settles each batch at once (see inflight.py), and the
  ledger keeps a bounded window of deliveries (see ledger.py);
* ``send_envelope`` sends an event in its envelope (envelope.py), recorded in the
  ledger under the envelope's id;
* with a tracer (``tracer=`` or an installed OpenTelemetry TracerProvider), a span
  per send, whose context travels in the record's ``traceparent`` header
  (tracing.py); without one, nothing per call.

Consumer: its failures are raised as LabErrors by the same table; explicit commits only,
offset queries with explicit partitions (Tansu needs them), lag per partition,
``read_all`` for read-back checks, and ``poll_envelopes`` handing each event over
once (deduplicated by envelope id in a bounded window, see dedup.py); traced, a span
per record polled, the child of its producer's send span.

Tansu (the local broker) has no idempotent producer: ``enable_idempotence`` is off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ..errors import CallNotPermitted, ConfigError, EnvelopeError, KafkaUnavailable
from ..resilience import BreakerConfig, CircuitBreaker, presets
from ..resilience.breaker import Permit
from .envelope import Envelope, decode as decode_envelope, encode as encode_envelope
from .dedup import SeenIds
from .inflight import MAX_REQUEST_BYTES, InFlight
from .kafka_errors import as_lab_error, is_business_error, is_infrastructure_error, translated
from .ledger import ACKED, FAILED, Delivery, DeliveryLedger
from .observability import Histogram, log_event
from .tracing import ClientSpans, client_spans, route

log = logging.getLogger("lab.clients.kafka")


#: What the producer's breaker counts as a failure, and what it ignores (the caller's own errors).
RECORDED = (is_infrastructure_error,)
IGNORED = (is_business_error,)


def default_breaker() -> BreakerConfig:
    """The "kafka" preset's breaker (lab.resilience.presets) with this client's error tables."""
    return presets.kafka(record_exceptions=RECORDED, ignore_exceptions=IGNORED).breaker


@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str
    client_id: str = "chaoslab"
    send_deadline_s: float = 5.0
    request_timeout_s: float = 2.0
    start_timeout_s: float = 5.0
    stop_timeout_s: float = 3.0
    linger_ms: int = 5
    acks: str | int = "all"
    breaker: BreakerConfig | None = None

    def __post_init__(self) -> None:
        # enqueue() bounds the wait for a message's batch by request_timeout twice over (metadata,
        # then room in aiokafka's queue); keeping that inside the deadline lets it skip a timer of its own.
        if self.request_timeout_s * 2 > self.send_deadline_s:
            raise ConfigError(f"KafkaSettings: send_deadline_s ({self.send_deadline_s:g}) must be at least twice "
                              f"request_timeout_s ({self.request_timeout_s:g})")

class KafkaProducer:
    def __init__(self, settings: KafkaSettings, breaker: CircuitBreaker | None = None,
                 ledger: DeliveryLedger | None = None, *, tracer: Any | None = None) -> None:
        """``tracer``: an OpenTelemetry Tracer for the send spans (default: the installed
        TracerProvider's, if any; none, no spans and no cost per send)."""
        self.settings = settings
        self.breaker = breaker or CircuitBreaker(f"kafka-producer:{settings.client_id}",
                                                 settings.breaker or default_breaker())
        self.ledger = ledger if ledger is not None else DeliveryLedger()  # an empty ledger is falsy
        self.send_latency = Histogram()
        self._producer: AIOKafkaProducer | None = None
        self._in_flight: InFlight | None = None
        # the generation of a CLOSED breaker stands in for a permit when sent_at is on the breaker's clock
        self._generation_if_closed = (self.breaker.closed_generation if self.breaker.config.clock is time.monotonic
                                      else _no_generation)
        spans = client_spans(tracer, "lab.clients.kafka")
        if spans is not None:
            self._spans = spans
            route(self, "enqueue", self._traced_enqueue)
            route(self, "enqueue_envelope", self._traced_enqueue_envelope)

    async def start(self) -> "KafkaProducer":
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, client_id=s.client_id, acks=s.acks, enable_idempotence=False,
            request_timeout_ms=int(s.request_timeout_s * 1000), linger_ms=s.linger_ms,
            retry_backoff_ms=100, metadata_max_age_ms=30_000, connections_max_idle_ms=60_000,
            max_request_size=MAX_REQUEST_BYTES,
        )
        try:
            with translated(f"starting a producer on {s.bootstrap} (bound {s.start_timeout_s:g}s)", starting=True):
                await asyncio.wait_for(producer.start(), s.start_timeout_s)
        except Exception:
            await _bounded(producer.stop(), s.stop_timeout_s)
            raise
        self._in_flight = InFlight(self, asyncio.get_running_loop(), producer)
        self._producer = producer
        return self

    async def __aenter__(self) -> "KafkaProducer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   message_id: str | None = None, headers: list[tuple[str, bytes]] | None = None) -> Delivery:
        """Send one message; resolves within send_deadline_s to an acked, failed or unknown Delivery."""
        return await await_delivery(await self.enqueue(topic, value, key, message_id, headers))

    async def send_envelope(self, topic: str, envelope: Envelope, key: bytes | None = None) -> Delivery:
        """Send one event in its envelope (see envelope.py): the ledger records it under the envelope's id,
        and the key is that id unless given (so partitioning spreads events as it spreads ids)."""
        return await await_delivery(await self.enqueue_envelope(topic, envelope, key))

    async def enqueue_envelope(self, topic: str, envelope: Envelope,
                               key: bytes | None = None) -> "asyncio.Future[Delivery]":
        """``enqueue`` for an envelope: a future of its Delivery, for pipelined sends."""
        value, headers = encode_envelope(envelope)
        return await self.enqueue(topic, value, key if key is not None else envelope.id.encode(), envelope.id,
                                  headers)

    async def enqueue(self, topic: str, value: bytes, key: bytes | None = None,
                      message_id: str | None = None,
                      headers: list[tuple[str, bytes]] | None = None) -> "asyncio.Future[Delivery]":
        """Hand one message to the producer; returns a future of its Delivery.

        Await the returned futures together to pipeline sends (as with raw
        aiokafka). Each resolves by its deadline whether or not anyone awaits it,
        and is recorded in the ledger either way.
        """
        message_id = message_id or (key.decode() if key else uuid.uuid4().hex)
        key = key if key is not None else message_id.encode()
        sent_at = _monotonic()
        breaker = self.breaker
        generation = self._generation_if_closed()  # while CLOSED a send needs just the generation (see InFlight)
        permit: Permit | int
        if generation is not None:
            permit = generation
        else:
            try:
                permit = breaker.acquire_permission()
            except CallNotPermitted as err:
                return _done(self._resolve(message_id, topic, FAILED, sent_at, error=err))
        in_flight = self._in_flight
        try:
            if self._producer is None or in_flight is None:
                raise KafkaUnavailable("the producer is not started")
            result = in_flight.append(topic, value, key, permit, message_id, sent_at, headers)
            if result is None:  # it takes a new batch: bounded by request_timeout twice over (see settings)
                result = await in_flight.append_to_new_batch(topic, value, key, permit, message_id, sent_at,
                                                             headers)
        except asyncio.CancelledError as err:
            breaker.record_result(_permit(permit, sent_at), err)
            raise
        except Exception as err:  # refused before it entered the producer's buffer
            breaker.record_result(_permit(permit, sent_at), err)
            return _done(self._resolve(message_id, topic, FAILED, sent_at, error=err))
        return result

    _spans: ClientSpans

    async def _traced_enqueue(self, topic: str, value: bytes, key: bytes | None = None,
                              message_id: str | None = None, headers: list[tuple[str, bytes]] | None = None,
                              correlation_id: str | None = None) -> "asyncio.Future[Delivery]":
        """``enqueue`` in a send span, whose context goes into the record's headers; the span ends
        when the send resolves."""
        spans = self._spans
        span = spans.start_send(topic, correlation_id)
        try:
            future = await type(self).enqueue(self, topic, value, key, message_id, spans.headers_for(span, headers))
        except BaseException as err:
            spans.end_refused(span, err)
            raise
        future.add_done_callback(functools.partial(spans.end_send_future, span, correlation_id))
        return future

    async def _traced_enqueue_envelope(self, topic: str, envelope: Envelope,
                                       key: bytes | None = None) -> "asyncio.Future[Delivery]":
        value, headers = encode_envelope(envelope)
        return await self._traced_enqueue(topic, value, key if key is not None else envelope.id.encode(),
                                          envelope.id, headers, envelope.correlation_id)

    def _resolve(self, message_id: str, topic: str, status: str, sent_at: float, error: BaseException | None = None,
                 partition: int | None = None, offset: int | None = None) -> Delivery:
        resolved_at = time.monotonic()
        self.send_latency.observe(resolved_at - sent_at)
        if error is not None:
            error = as_lab_error(error, "send")
        delivery = self.ledger.record(Delivery(
            message_id=message_id, topic=topic, status=status, partition=partition, offset=offset,
            error_class=type(error).__name__ if error is not None else None,
            error=str(error) if error is not None else None, sent_at=sent_at, resolved_at=resolved_at))
        if status != ACKED:
            log_event(log, logging.INFO, "send not acknowledged", message_id=message_id, topic=topic, status=status,
                      error_class=delivery.error_class)
        return delivery

    async def stop(self) -> None:
        """Flush and close within stop_timeout_s; past it, abandon the flush and close the connections."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if await _bounded(producer.stop(), self.settings.stop_timeout_s):
            return
        log_event(log, logging.WARNING, "producer stop timed out; closing without flushing",
                  timeout_s=self.settings.stop_timeout_s)
        sender = getattr(producer, "_sender", None)
        task = getattr(sender, "sender_task", None)
        if task is not None and not task.done():
            task.cancel()
        await _bounded(producer.client.close(), 1.0)

    def prometheus(self) -> str:
        counts = self.ledger.counts()
        labels = f'client="{self.settings.client_id}"'
        lines = ["# TYPE lab_kafka_deliveries_total counter"]
        lines += [f'lab_kafka_deliveries_total{{{labels},status="{status}"}} {n}' for status, n in counts.items()]
        lines += ["# TYPE lab_kafka_send_seconds histogram"]
        lines += self.send_latency.prometheus("lab_kafka_send_seconds", labels)
        return "\n".join(lines) + "\n" + self.breaker.prometheus()


@dataclasses.dataclass(frozen=True)
class ConsumerSettings:
    bootstrap: str
    group_id: str | None = None
    client_id: str = "chaoslab-consumer"
    request_timeout_s: float = 3.0
    start_timeout_s: float = 5.0
    stop_timeout_s: float = 3.0
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 3.0


class KafkaConsumer:
    def __init__(self, settings: ConsumerSettings, *, tracer: Any | None = None) -> None:
        """``tracer``: an OpenTelemetry Tracer for the spans of ``poll_envelopes`` (default: the installed
        TracerProvider's, if any; none, no spans and no cost per record)."""
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._spans = client_spans(tracer, "lab.clients.kafka")

    @property
    def raw(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise KafkaUnavailable("the consumer is not started (call start())")
        return self._consumer

    async def start(self) -> "KafkaConsumer":
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=s.group_id, client_id=s.client_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            request_timeout_ms=int(s.request_timeout_s * 1000),
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
        )
        try:
            with translated(f"starting a consumer on {s.bootstrap} (bound {s.start_timeout_s:g}s)", starting=True):
                await asyncio.wait_for(consumer.start(), s.start_timeout_s)
        except Exception:
            await _bounded(consumer.stop(), s.stop_timeout_s)
            raise
        self._consumer = consumer
        return self

    async def __aenter__(self) -> "KafkaConsumer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions, waiting (bounded) for metadata that names them."""
        deadline = time.monotonic() + self.settings.request_timeout_s
        while True:
            found = self.raw.partitions_for_topic(topic)
            if found:
                return [TopicPartition(topic, p) for p in sorted(found)]
            if time.monotonic() >= deadline:
                raise KafkaUnavailable(f"no partitions known for topic {topic!r}")
            await _bounded(self.raw._client.force_metadata_update(), self.settings.request_timeout_s)
            await asyncio.sleep(0.05)

    async def assign(self, partitions: list[TopicPartition], from_beginning: bool = False) -> None:
        """Assign partitions and wait (bounded) until each has a position: the group's
        committed offset, the reset policy's, or the beginning with ``from_beginning``."""
        consumer = self.raw
        consumer.assign(partitions)
        timeout = self.settings.request_timeout_s
        with translated(f"assigning {partitions}"):
            for tp in partitions:
                await asyncio.wait_for(consumer.position(tp), timeout)
            if from_beginning:
                await asyncio.wait_for(consumer.seek_to_beginning(*partitions), timeout)
                for tp in partitions:
                    await asyncio.wait_for(consumer.position(tp), timeout)

    async def poll(self, timeout_s: float = 1.0, max_records: int | None = None) -> list[Any]:
        with translated("poll"):
            batches = await asyncio.wait_for(self.raw.getmany(timeout_ms=int(timeout_s * 1000),
                                                              max_records=max_records),
                                             timeout_s + self.settings.request_timeout_s)
        return [record for records in batches.values() for record in records]

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        with translated("commit"):
            await asyncio.wait_for(self.raw.commit(offsets), self.settings.request_timeout_s)

    async def lag(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """End offset minus position, per partition (explicit partitions: Tansu needs them)."""
        timeout = self.settings.request_timeout_s
        with translated("measuring lag"):
            ends = await asyncio.wait_for(self.raw.end_offsets(partitions), timeout)
            positions = {tp: await asyncio.wait_for(self.raw.position(tp), timeout) for tp in partitions}
        return {tp: max(0, ends[tp] - positions[tp]) for tp in partitions}

    async def read_all(self, topic: str, timeout_s: float = 10.0) -> list[Any]:
        """Every record of ``topic`` from offset 0 to its end, the end being the later of the end offsets
        the broker lists and the high watermark its fetches report.

        Why not ``seek_to_beginning`` and ListOffsets alone: Tansu (0.6, memory storage) answers
        ListOffsets from the batch objects' modification times, not their offsets. EARLIEST is the
        offset of the batch WRITTEN first, so when two producers' batches for one partition are written
        out of offset order (the batch given offset 0 stored a moment after the one given offset 2),
        reading from "the beginning" silently skips the first batch: acknowledged messages that are on
        the broker, reported lost (bench/repro_first_batch_race.py: 12 such of 12,000 sends in 400
        rounds). LATEST is the last-written batch's base offset plus one, which can be short of the
        end. Offset 0 is where a partition starts on a broker that deletes nothing; on one that has
        deleted it, the fetch is out of range and the consumer's reset policy (earliest) applies. The
        fetch's high watermark is the partition's true end on both.

        Traced (a tracer given or installed), each record read gets its consume span, a child of the send
        span its ``traceparent`` names: the read-back is how a scenario consumes what it sent."""
        partitions = await self.partitions(topic)
        consumer = self.raw
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        with translated(f"reading the end offsets of {topic!r}"):
            ends = await asyncio.wait_for(consumer.end_offsets(partitions), self.settings.request_timeout_s)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with translated(f"reading the positions in {topic!r}"):
                positions = {tp: await asyncio.wait_for(consumer.position(tp), self.settings.request_timeout_s)
                             for tp in partitions}
            if all(_read_to_end(positions[tp], ends[tp], consumer.highwater(tp)) for tp in partitions):
                return records
            polled = await self.poll(min(0.5, max(0.05, deadline - time.monotonic())))
            self._trace_read(polled)
            records += polled
        raise KafkaUnavailable(f"read-back of {topic!r} did not reach the end offsets within {timeout_s:g}s")

    def _trace_read(self, records: list[Any]) -> None:
        """A consume span per record read back: its envelope's id and correlation id where it has an envelope
        (a record without one is still read: no error on its span)."""
        spans = self._spans
        if spans is None:
            return
        for record in records:
            try:
                envelope: Envelope | None = decode_envelope(record.value, record.headers)
            except EnvelopeError:
                envelope = None
            spans.consumed(record, envelope, None)

    async def poll_envelopes(self, seen: SeenIds, timeout_s: float = 1.0,
                             max_records: int | None = None) -> tuple[list[Envelope], list[EnvelopeError]]:
        """The next records as envelopes, each event once: a record whose envelope id ``seen`` already
        holds is dropped (counted in ``seen.duplicates``); a malformed record is returned as its
        EnvelopeError, not raised, so one bad record does not stop the consumer."""
        events: list[Envelope] = []
        malformed: list[EnvelopeError] = []
        spans = self._spans
        for record in await self.poll(timeout_s, max_records):
            try:
                envelope = decode_envelope(record.value, record.headers)
            except EnvelopeError as err:
                malformed.append(err)
                if spans is not None:
                    spans.consumed(record, None, err)
                continue
            first = seen.first_time(envelope.id)
            if first:
                events.append(envelope)
            if spans is not None:
                spans.consumed(record, envelope, None, duplicate=not first)
        return events, malformed

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not await _bounded(consumer.stop(), self.settings.stop_timeout_s):
            log_event(log, logging.WARNING, "consumer stop timed out", timeout_s=self.settings.stop_timeout_s)


def _no_generation() -> None:
    return None


def _read_to_end(position: int, listed_end: int, highwater: int | None) -> bool:
    """Whether a read-back has a partition's every record: a fetch has reported its high watermark (None
    until one has) and the position is at or past it and past the end offset listed before reading."""
    return highwater is not None and position >= max(listed_end, highwater)


_monotonic = time.monotonic


def _permit(permit: Permit | int, sent_at: float) -> Permit:
    """The Permit of a send that took only the generation (CLOSED; see enqueue)."""
    return Permit(permit, False, sent_at) if isinstance(permit, int) else permit


def _done(delivery: Delivery) -> "asyncio.Future[Delivery]":
    future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
    future.set_result(delivery)
    return future


async def await_delivery(future: "asyncio.Future[Delivery]") -> Delivery:
    """Await a delivery future without letting the caller's cancellation cancel it."""
    return await asyncio.shield(future)


async def _bounded(awaitable: Any, timeout_s: float) -> bool:
    """Await with a bound; True if it finished (errors included), False if it timed out."""
    try:
        await asyncio.wait_for(awaitable, timeout_s)
    except asyncio.TimeoutError:
        return False
    except Exception as err:  # closing is best effort: whatever it met, the caller goes on closing
        log_event(log, logging.DEBUG, "error while closing", error=repr(err))
    return True


__all__ = ["IGNORED", "RECORDED", "ConsumerSettings", "KafkaConsumer", "KafkaProducer", "KafkaSettings",
           "await_delivery", "default_breaker"]
