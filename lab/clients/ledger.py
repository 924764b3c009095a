"""The delivery ledger and the loss/duplicate checker.

Every send ends in exactly one of three ways:
* acked    the broker confirmed it (topic, partition, offset known);
* failed   it certainly was not written (refused before it left the client);
* unknown  it may or may not have been written (the deadline passed, or the
           connection broke, after it was handed to the producer).
The checker compares the ledger with a full read-back: an acked message that
is missing is LOST; a message read more than once is a DUPLICATE; an unknown
one may go either way and is only reported.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, NamedTuple

from ..errors import ConfigError

ACKED, FAILED, UNKNOWN = "acked", "failed", "unknown"


class Delivery(NamedTuple):
    """One send's outcome (a NamedTuple: the producer makes one per message, so it must be cheap)."""

    message_id: str
    topic: str
    status: str
    partition: int | None = None
    offset: int | None = None
    error_class: str | None = None
    error: str | None = None
    sent_at: float = 0.0
    resolved_at: float = 0.0

    @property
    def latency_s(self) -> float:
        return self.resolved_at - self.sent_at


#: Deliveries a ledger keeps in full by default (see DeliveryLedger for the bytes each).
DEFAULT_MAX_ENTRIES = 100_000

_new_tuple = tuple.__new__


class _Acked:
    """The acknowledged sends of one aiokafka batch (one topic and partition), column by column."""

    __slots__ = ("topic", "partition", "resolved_at", "ids", "offsets", "sent_at")

    def __init__(self, topic: str, partition: int | None, resolved_at: float, ids: list[str],
                 offsets: list[int | None], sent_at: list[float]) -> None:
        self.topic, self.partition, self.resolved_at = topic, partition, resolved_at
        self.ids, self.offsets, self.sent_at = ids, offsets, sent_at

    def __len__(self) -> int:
        return len(self.ids)

    def drop_oldest(self, count: int) -> None:
        del self.ids[:count], self.offsets[:count], self.sent_at[:count]

    def deliveries(self) -> list[Delivery]:
        topic, partition, resolved_at = self.topic, self.partition, self.resolved_at
        return [_new_tuple(Delivery, (message_id, topic, ACKED, partition, offset, None, None, sent_at, resolved_at))
                for message_id, offset, sent_at in zip(self.ids, self.offsets, self.sent_at)]


class _One:
    """One delivery (a failed or unknown one, or an acked one that came alone), as a plain tuple."""

    __slots__ = ("row",)

    def __init__(self, delivery: Delivery) -> None:
        self.row = tuple(delivery)

    def __len__(self) -> int:
        return 1

    def deliveries(self) -> list[Delivery]:
        return [_new_tuple(Delivery, self.row)]


class DeliveryLedger:
    """Exact counts of every delivery, and the most recent ``max_entries`` deliveries in full.

    Memory is bounded: at most ``max_entries`` deliveries are kept, plus three
    counters. An acknowledged one costs about 120 bytes (its id string, an offset,
    a send time and three list slots; the topic, partition and resolution time are
    shared by its aiokafka batch; measured in tests/unit/test_delivery_ledger.py),
    a failed or unknown one about 330 (with a 30-character error text). Older
    deliveries are evicted first in, first out; ``evicted`` says how many, and
    ``check_delivery`` reports them as unchecked instead of passing over them in
    silence. So the loss check of a topic is complete while the ledger has
    evicted nothing, i.e. for the first ``max_entries`` sends of the producer's
    life (100,000 by default: about 12 MB if all were acknowledged).

    Why columns per batch: no object per acknowledged message for the garbage
    collector to walk. A ledger of Delivery NamedTuples (which the collector never
    stops tracking) made every full collection walk every message ever sent, and
    the producer slowed down round after round (issue 16). ``entries`` builds the
    Delivery objects when asked.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ConfigError(f"DeliveryLedger: max_entries must be a positive integer, not {max_entries!r}")
        self.max_entries = max_entries
        self._chunks: collections.deque[_Acked | _One] = collections.deque()
        self._kept = 0
        self._counts = {ACKED: 0, FAILED: 0, UNKNOWN: 0}

    def record(self, delivery: Delivery) -> Delivery:
        self._chunks.append(_One(delivery))
        self._counts[delivery.status] += 1
        self._kept += 1
        if self._kept > self.max_entries:
            self._evict()
        return delivery

    def record_acked(self, topic: str, partition: int | None, resolved_at: float, ids: list[str],
                     offsets: list[int | None], sent_at: list[float]) -> None:
        """Record the acknowledged sends of one batch at once (the lists are the ledger's from now on)."""
        self._chunks.append(_Acked(topic, partition, resolved_at, ids, offsets, sent_at))
        self._counts[ACKED] += len(ids)
        self._kept += len(ids)
        if self._kept > self.max_entries:
            self._evict()

    def _evict(self) -> None:
        chunks = self._chunks
        while self._kept - len(chunks[0]) >= self.max_entries:
            self._kept -= len(chunks.popleft())
        if self._kept > self.max_entries:  # the oldest chunk is a batch: keep its newest part
            oldest = chunks[0]
            assert isinstance(oldest, _Acked)
            oldest.drop_oldest(self._kept - self.max_entries)
            self._kept = self.max_entries

    @property
    def entries(self) -> list[Delivery]:
        """The kept deliveries, oldest batch first (a new list of Delivery objects on each call)."""
        return [delivery for chunk in self._chunks for delivery in chunk.deliveries()]

    def __len__(self) -> int:
        """How many deliveries are kept."""
        return self._kept

    @property
    def evicted(self) -> int:
        """Deliveries recorded but no longer kept (counted, not checkable)."""
        return sum(self._counts.values()) - self._kept

    def acked_ids(self, topic: str | None = None) -> list[str]:
        """Ids of the kept acknowledged deliveries (of ``topic``, if given)."""
        ids: list[str] = []
        for chunk in self._chunks:
            if isinstance(chunk, _Acked):
                if topic is None or chunk.topic == topic:
                    ids += chunk.ids
            elif chunk.row[2] == ACKED and (topic is None or chunk.row[1] == topic):
                ids.append(str(chunk.row[0]))
        return ids

    def counts(self) -> dict[str, int]:
        """Every delivery since the ledger was made, kept or evicted."""
        return dict(self._counts)


@dataclasses.dataclass(frozen=True)
class LossReport:
    acked: int
    read_back: int
    lost: tuple[str, ...]  # acked, never read back
    duplicates: dict[str, int]  # message id -> times read (> 1)
    unknown_delivered: int  # unknown sends that were in fact written
    unknown_missing: int  # unknown sends that were not
    failed_but_delivered: tuple[str, ...]  # "failed" sends that were read back: a ledger bug
    unchecked: int = 0  # deliveries the ledger evicted: counted, but their ids are gone

    @property
    def ok(self) -> bool:
        return not self.lost and not self.failed_but_delivered

    @property
    def complete(self) -> bool:
        """Every delivery was compared with the read-back (none had been evicted from the ledger)."""
        return self.unchecked == 0

    def summary(self) -> str:
        return (f"{self.acked} acked, {self.read_back} read back, {len(self.lost)} lost, "
                f"{len(self.duplicates)} duplicated, unknown: {self.unknown_delivered} delivered / "
                f"{self.unknown_missing} missing, {len(self.failed_but_delivered)} failed-but-delivered"
                + (f", {self.unchecked} evicted from the ledger unchecked" if self.unchecked else ""))


def check_delivery(ledger: "DeliveryLedger | Iterable[Delivery]", read_back_ids: Iterable[str],
                   topic: str | None = None) -> LossReport:
    """Compare deliveries (of ``topic``, if given) with the ids read back.

    Given a DeliveryLedger, deliveries it has evicted are reported as ``unchecked``
    (the report is then not ``complete``); given plain deliveries, all are checked.
    """
    unchecked = ledger.evicted if isinstance(ledger, DeliveryLedger) else 0  # of any topic: evicted ids are gone
    entries = [d for d in (ledger.entries if isinstance(ledger, DeliveryLedger) else ledger)
               if topic is None or d.topic == topic]
    seen = collections.Counter(read_back_ids)
    acked = [d for d in entries if d.status == ACKED]
    unknown = [d for d in entries if d.status == UNKNOWN]
    failed = [d for d in entries if d.status == FAILED]
    return LossReport(
        acked=len(acked),
        read_back=sum(seen.values()),
        lost=tuple(d.message_id for d in acked if seen[d.message_id] == 0),
        duplicates={mid: n for mid, n in seen.items() if n > 1},
        unknown_delivered=sum(1 for d in unknown if seen[d.message_id] > 0),
        unknown_missing=sum(1 for d in unknown if seen[d.message_id] == 0),
        failed_but_delivered=tuple(d.message_id for d in failed if seen[d.message_id] > 0),
        unchecked=unchecked,
    )
