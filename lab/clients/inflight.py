"""The producer's sends from the caller to their Delivery: batched by us, settled by batch, bounded by one timer.

Why we build the batches: with ``AIOKafkaProducer.send`` every message gets a
future of aiokafka's, and a callback on it to learn its outcome costs a loop
handle per message (1.5-3 us on the 2-core lab machine, a tenth of a whole raw
send); settling each one on its own (breaker, ledger entry, histogram, deadline)
ran at 0.36x raw aiokafka (issue 16). So the producer fills aiokafka's
BatchBuilder itself and hands each batch over with the public ``send_batch``:
one future and ONE callback per batch, which settles all its sends at once (every
caller's future, then the breaker, the ledger and the latency histogram once
each, with no Python-level step per message when all were acknowledged).
Partitioning is aiokafka's default (the Java client's murmur2 of the key, made
positive, modulo the partition count), so keys land where raw aiokafka puts them.

Per partition there is one open batch at a time, appended to in enqueue order;
a new one is submitted when it is full or was drained, by one send while the
others for that partition wait for it, so order within a partition is kept.
That send is in the batch before it is submitted: aiokafka answers a batch it
finds empty with None and never sends what is appended to it afterwards.
aiokafka lingers, drains, retries and expires our batches as it does its own.

Why one timer: every send has the same ``send_deadline_s``, so groups of sends
wait in a FIFO ordered by their first send, and one timer armed for the earliest
deadline expires whatever is overdue as unknown. Settled groups leave the FIFO's
head as soon as they reach it, and the timer is cancelled when the FIFO empties:
the FIFO holds about what is in flight (at most what was sent in the last
``send_deadline_s``), and nothing keeps a stopped producer alive.

Guarantees: each send resolves exactly once, to acked (its batch was
acknowledged first) or unknown (its batch failed or was cancelled, or the
deadline came first); a send refused before it is in a batch raises to the
caller (the producer records it as failed); the breaker hears of each outcome
once; the ledger has the delivery before any callback on the caller's future runs.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ..errors import KafkaUnavailable
from ..resilience.breaker import Permit
from .ledger import ACKED, UNKNOWN, Delivery

if TYPE_CHECKING:
    from .kafka import KafkaProducer

#: aiokafka's default max_request_size, which the producer passes explicitly.
MAX_REQUEST_BYTES = 1_048_576

_new_tuple = tuple.__new__
_Future = asyncio.Future
# C-level steps, so that settling an acknowledged batch runs no Python code per message
_future_done, _future_set_result = _Future.done, _Future.set_result
_make_delivery = functools.partial(_new_tuple, Delivery)

#: One send in a group, a plain tuple: (offset_in_batch, permit, message_id, sent_at, result). A permit
#: is the breaker's Permit, or just its generation (an int) for a send made while the breaker was
#: CLOSED and its clock is time.monotonic (then sent_at is on the breaker's clock too).
_Send = tuple[int, "Permit | int", str, float, "asyncio.Future[Delivery]"]
_get_relative, _get_permit, _get_id, _get_sent_at, _get_result = (itemgetter(i) for i in range(5))


def partition_for(key: bytes, partitions: list[int]) -> int:
    """aiokafka's DefaultPartitioner choice for a key (asserted equal in tests/property/test_batched_accounting.py)."""
    index: int = (murmur2(key) & 0x7FFFFFFF) % len(partitions)
    return partitions[index]


class _Group:
    """Sends in one batch, in enqueue order (a batch has a second group only if the first expired)."""

    __slots__ = ("topic", "sends", "settled")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sends: list[_Send] = []
        self.settled = False


class _OpenBatch:
    """The batch of one partition that takes new sends, and the group they join."""

    __slots__ = ("builder", "future", "group")

    def __init__(self, builder: Any, future: Any, group: _Group) -> None:
        self.builder, self.future, self.group = builder, future, group


class InFlight:
    """Every send of one producer from its batch to its Delivery."""

    def __init__(self, producer: "KafkaProducer", loop: asyncio.AbstractEventLoop, aiokafka_producer: Any) -> None:
        self.producer = producer
        self.loop = loop
        self.aiokafka = aiokafka_producer
        self.deadline_s = producer.settings.send_deadline_s
        self.request_timeout_s = producer.settings.request_timeout_s
        self.partitions: dict[str, list[int]] = {}  # topic -> its partitions, refreshed with each new batch
        self.open: dict[tuple[str, int], _OpenBatch] = {}
        self.opening: dict[tuple[str, int], asyncio.Future[BaseException | None]] = {}
        self.fifo: collections.deque[_Group] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Sends in batches and not resolved yet."""
        return sum(not send[4].done() for group in self.fifo for send in group.sends)

    def append(self, topic: str, value: bytes, key: bytes, permit: Permit | int, message_id: str,
               sent_at: float, headers: list[tuple[str, bytes]] | None = None) -> "asyncio.Future[Delivery] | None":
        """Add the message to its partition's open batch; its Delivery's future, or None if that takes a
        new batch (then call ``append_to_new_batch``)."""
        partitions = self.partitions.get(topic)
        if partitions is None:
            return None
        tp = (topic, partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)])  # partition_for, inlined
        batch = self.open.get(tp)
        if batch is None or batch.group.settled:
            return None
        metadata = (batch.builder.append(timestamp=None, key=key, value=value) if headers is None
                    else batch.builder.append(timestamp=None, key=key, value=value, headers=headers))
        if metadata is None:  # full (a message over batch_size never fits a batch begun), or drained already
            return None
        result: asyncio.Future[Delivery] = _Future(loop=self.loop)
        batch.group.sends.append((metadata.offset, permit, message_id, sent_at, result))
        return result

    async def append_to_new_batch(self, topic: str, value: bytes, key: bytes, permit: Permit | int,
                                  message_id: str, sent_at: float,
                                  headers: list[tuple[str, bytes]] | None = None) -> "asyncio.Future[Delivery]":
        """Add the message to its partition's open batch, starting one if needed; raises if it cannot
        within twice the request timeout from ``sent_at`` (metadata, then room in aiokafka's queue)."""
        give_up_at = sent_at + 2 * self.request_timeout_s
        partitions = sorted(await self.aiokafka.partitions_for(topic))  # bounded by the request timeout
        self.partitions[topic] = partitions
        tp = (topic, partition_for(key, partitions))
        if DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers or []) > MAX_REQUEST_BYTES:
            raise MessageSizeTooLargeError(f"the message is larger than {MAX_REQUEST_BYTES} bytes")
        while True:
            opening = self.opening.get(tp)
            if opening is None:
                break
            try:  # another send is starting this partition's batch
                error = await asyncio.wait_for(asyncio.shield(opening), max(0.0, give_up_at - time.monotonic()))
            except asyncio.TimeoutError:
                raise KafkaTimeoutError(
                    f"no batch for {tp[0]}[{tp[1]}] within {2 * self.request_timeout_s:g}s") from None
            if error is not None:
                raise KafkaUnavailable(f"cannot start a batch for {tp[0]}[{tp[1]}]: {error!r}")
        result = self.append(topic, value, key, permit, message_id, sent_at, headers)
        if result is not None:
            return result
        batch = self.open.get(tp)
        if batch is not None and batch.group.settled and not batch.builder.closed():
            # its sends expired while it still takes messages (an outage): a new group in the same batch
            metadata = batch.builder.append(timestamp=None, key=key, value=value, headers=headers or [])
            if metadata is not None:  # else it is full (and now closed): a new batch
                group = self._open_group(topic, sent_at)
                batch.group = group
                batch.future.add_done_callback(functools.partial(self._batch_answered, tp, batch, group))
                return self._add_send(group, metadata, permit, message_id, sent_at)
        return await self._start_batch(tp, value, key, permit, message_id, sent_at, give_up_at, headers or [])

    async def _start_batch(self, tp: tuple[str, int], value: bytes, key: bytes, permit: Permit | int,
                           message_id: str, sent_at: float, give_up_at: float,
                           headers: list[tuple[str, bytes]]) -> "asyncio.Future[Delivery]":
        opening: asyncio.Future[BaseException | None] = self.loop.create_future()
        self.opening[tp] = opening
        error: BaseException | None = KafkaUnavailable("the send starting the batch was cancelled")
        try:
            builder = self.aiokafka.create_batch()
            # The message goes in BEFORE the batch is submitted: aiokafka drains a batch that is empty
            # when its sender wakes up without sending it, and resolves its future with None
            # (MessageBatch.done_noack); a message appended after that is never sent. The builder is
            # not closed by that drain, so the append would succeed and the send be settled as acked.
            metadata = builder.append(timestamp=None, key=key, value=value, headers=headers)
            if metadata is None:  # a fresh batch takes its first message whatever its size
                raise KafkaTimeoutError("a new batch refused its first message")
            try:  # waits for metadata and for the partition's previous batch to drain; in this task, so
                # nothing can cancel it once aiokafka has queued the batch (asyncio.wait_for ran it in a
                # task of its own, and one more loop iteration passed before this task went on)
                async with asyncio.timeout(max(0.0, give_up_at - time.monotonic())):
                    future = await self.aiokafka.send_batch(builder, tp[0], partition=tp[1])
            except TimeoutError:
                raise KafkaTimeoutError(f"no room for a batch for {tp[0]}[{tp[1]}] "
                                        f"within {2 * self.request_timeout_s:g}s") from None
            group = self._open_group(tp[0], sent_at)
            batch = self.open[tp] = _OpenBatch(builder, future, group)
            future.add_done_callback(functools.partial(self._batch_answered, tp, batch, group))
            error = None
            return self._add_send(group, metadata, permit, message_id, sent_at)
        except BaseException as err:
            if not isinstance(err, asyncio.CancelledError):
                error = err
            raise
        finally:
            del self.opening[tp]
            opening.set_result(error)

    def _add_send(self, group: _Group, metadata: Any, permit: Permit | int, message_id: str,
                  sent_at: float) -> "asyncio.Future[Delivery]":
        result: asyncio.Future[Delivery] = _Future(loop=self.loop)
        group.sends.append((metadata.offset, permit, message_id, sent_at, result))
        return result

    def _open_group(self, topic: str, sent_at: float) -> _Group:
        group = _Group(topic)
        self.fifo.append(group)
        if self.timer is None:
            self.timer = self.loop.call_later(max(0.0, sent_at + self.deadline_s - time.monotonic()), self._sweep)
        return group

    def _batch_answered(self, tp: tuple[str, int], batch: _OpenBatch, group: _Group, batch_future: Any) -> None:
        if self.open.get(tp) is batch:
            del self.open[tp]  # done: aiokafka has drained it, it takes no more messages
        if not self._settle_acknowledged(group, batch_future):
            self._settle_each(group, batch_future)
        fifo = self.fifo
        while fifo and fifo[0].settled:
            fifo.popleft()
        if not fifo and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _settle_acknowledged(self, group: _Group, batch_future: Any) -> bool:
        """The common case, with no Python-level step per message: the batch acknowledged, no send
        expired, all permitted while CLOSED in one generation. False, with nothing done, otherwise."""
        sends = group.sends
        if group.settled or not sends or batch_future.cancelled() or batch_future.exception() is not None:
            return False
        metadata = batch_future.result()
        results = list(map(_get_result, sends))
        permits = list(map(_get_permit, sends))
        generation = permits[0]
        if (metadata is None or generation.__class__ is not int or permits.count(generation) != len(permits)
                or any(map(_future_done, results))):
            return False
        now = time.monotonic()
        topic, partition = group.topic, metadata.partition
        ids, sent_ats = list(map(_get_id, sends)), list(map(_get_sent_at, sends))
        offsets = list(map(metadata.offset.__add__, map(_get_relative, sends)))
        deliveries = map(_make_delivery, zip(ids, repeat(topic), repeat(ACKED), repeat(partition), offsets,
                                             repeat(None), repeat(None), sent_ats, repeat(now)))
        collections.deque(map(_future_set_result, results, deliveries), maxlen=0)
        group.settled = True
        producer = self.producer
        producer.breaker.record_successes(generation, sent_ats)
        producer.ledger.record_acked(topic, partition, now, ids, offsets, sent_ats)
        producer.send_latency.observe_since(now, sent_ats)
        return True

    def _settle_each(self, group: _Group, batch_future: Any) -> None:
        error: BaseException | None
        if batch_future.cancelled():
            error, metadata = asyncio.CancelledError("batch future cancelled"), None
        else:
            error = batch_future.exception()  # it may have reached the broker before failing
            metadata = batch_future.result() if error is None else None  # None with acks=0
            if error is None and metadata is None and self.producer.settings.acks != 0:
                # aiokafka answers None for a batch it drained empty, without sending it: whatever
                # was appended to it afterwards never left, so it is not acknowledged
                error = KafkaUnavailable("aiokafka answered the batch with no offset, though acks is "
                                         f"{self.producer.settings.acks!r}")
        now = time.monotonic()
        producer = self.producer
        breaker, ledger = producer.breaker, producer.ledger
        sent_ats: list[float] = []
        for send in group.sends:
            relative, permit, message_id, sent_at, result = send
            if result.done():
                continue  # expired
            if error is not None:
                self._unknown(group.topic, send, error)
                continue
            partition = metadata.partition if metadata is not None else None
            offset = metadata.offset + relative if metadata is not None else None
            delivery = _new_tuple(Delivery, (message_id, group.topic, ACKED, partition, offset, None, None, sent_at,
                                             now))
            result.set_result(delivery)
            if isinstance(permit, int):
                breaker.record_successes(permit, [sent_at])
            else:
                breaker.record_result(permit)
            ledger.record(delivery)
            sent_ats.append(sent_at)
        producer.send_latency.observe_since(now, sent_ats)
        group.settled = True

    def _sweep(self) -> None:
        """Expire, as unknown, every send whose deadline has passed; re-arm for the next deadline."""
        self.timer = None
        overdue_before = time.monotonic() - self.deadline_s
        next_sent_at = None
        for group in self.fifo:
            if group.settled:
                continue
            first_sent_at = group.sends[0][3] if group.sends else overdue_before
            if first_sent_at > overdue_before:  # this group and all after it started later
                next_sent_at = first_sent_at if next_sent_at is None else min(next_sent_at, first_sent_at)
                break
            pending = False
            for send in group.sends:
                if send[4].done():
                    continue
                if send[3] <= overdue_before:
                    self._unknown(group.topic, send, TimeoutError(f"no acknowledgement within {self.deadline_s:g}s"))
                else:
                    pending = True
                    next_sent_at = send[3] if next_sent_at is None else min(next_sent_at, send[3])
                    break  # the rest of this group was sent later still
            group.settled = not pending
        fifo = self.fifo
        while fifo and fifo[0].settled:
            fifo.popleft()
        if fifo:
            if next_sent_at is None:
                next_sent_at = overdue_before + self.deadline_s
            delay_s = max(0.0, next_sent_at + self.deadline_s - time.monotonic())
            self.timer = self.loop.call_later(delay_s, self._sweep)

    def _unknown(self, topic: str, send: _Send, error: BaseException) -> None:
        _relative, permit, message_id, sent_at, result = send
        if isinstance(permit, int):  # taken while CLOSED: what acquire_permission() would have given
            permit = Permit(permit, False, sent_at)
        producer = self.producer
        producer.breaker.record_result(permit, error)
        result.set_result(producer._resolve(message_id, topic, UNKNOWN, sent_at, error=error))
