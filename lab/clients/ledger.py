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


class DeliveryLedger:
    def __init__(self) -> None:
        self.entries: list[Delivery] = []

    def record(self, delivery: Delivery) -> Delivery:
        self.entries.append(delivery)
        return delivery

    def counts(self) -> dict[str, int]:
        counts = collections.Counter(d.status for d in self.entries)
        return {status: counts.get(status, 0) for status in (ACKED, FAILED, UNKNOWN)}


@dataclasses.dataclass(frozen=True)
class LossReport:
    acked: int
    read_back: int
    lost: tuple[str, ...]  # acked, never read back
    duplicates: dict[str, int]  # message id -> times read (> 1)
    unknown_delivered: int  # unknown sends that were in fact written
    unknown_missing: int  # unknown sends that were not
    failed_but_delivered: tuple[str, ...]  # "failed" sends that were read back: a ledger bug

    @property
    def ok(self) -> bool:
        return not self.lost and not self.failed_but_delivered

    def summary(self) -> str:
        return (f"{self.acked} acked, {self.read_back} read back, {len(self.lost)} lost, "
                f"{len(self.duplicates)} duplicated, unknown: {self.unknown_delivered} delivered / "
                f"{self.unknown_missing} missing, {len(self.failed_but_delivered)} failed-but-delivered")


def check_delivery(ledger: Iterable[Delivery], read_back_ids: Iterable[str]) -> LossReport:
    entries = list(ledger)
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
    )
