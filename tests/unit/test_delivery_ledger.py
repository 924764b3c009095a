"""The delivery ledger: exact counts forever, the newest deliveries in full, bounded memory, honest checks."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from lab.clients import ACKED, FAILED, UNKNOWN, Delivery, DeliveryLedger, check_delivery
from lab.errors import ConfigError

pytestmark = pytest.mark.unit


def record_batches(ledger: DeliveryLedger, total: int, batch: int = 100, topic: str = "t", first: int = 0) -> None:
    """Acknowledged sends the way the producer hands them over: one batch (topic, partition) at a time."""
    for start in range(first, first + total, batch):
        ids = [f"m{i:09d}" for i in range(start, min(start + batch, first + total))]
        ledger.record_acked(topic, start % 4, 2.0, ids, list(range(start, start + len(ids))), [1.0] * len(ids))


def test_counts_are_exact_and_the_newest_entries_are_kept():
    ledger = DeliveryLedger(max_entries=250)
    record_batches(ledger, 1000)
    ledger.record(Delivery("late", "t", UNKNOWN, error_class="TimeoutError", error="no ack"))
    assert ledger.counts() == {ACKED: 1000, FAILED: 0, UNKNOWN: 1}
    assert len(ledger) == 250 and ledger.evicted == 751
    ids = [d.message_id for d in ledger.entries]
    assert ids == [f"m{i:09d}" for i in range(751, 1000)] + ["late"]  # a batch cut to keep exactly 250
    assert ledger.entries[0] == Delivery("m000000751", "t", ACKED, 0, 751, None, None, 1.0, 2.0)


def test_check_reports_evicted_deliveries_as_unchecked_not_as_passed():
    ledger = DeliveryLedger(max_entries=100)
    record_batches(ledger, 300)
    report = check_delivery(ledger, [f"m{i:09d}" for i in range(200, 300)])
    assert report.ok and not report.complete and report.unchecked == 200 and report.acked == 100
    assert "200 evicted from the ledger unchecked" in report.summary()

    whole = DeliveryLedger(max_entries=1000)
    record_batches(whole, 300)
    report = check_delivery(whole, [f"m{i:09d}" for i in range(1, 300)])
    assert report.complete and not report.ok and report.lost == ("m000000000",)


def test_check_of_one_topic_and_its_acked_ids():
    ledger = DeliveryLedger()
    record_batches(ledger, 10, topic="a")
    record_batches(ledger, 5, topic="b", first=10)
    ledger.record(Delivery("f1", "a", FAILED))
    assert ledger.acked_ids("b") == [f"m{i:09d}" for i in range(10, 15)]
    report = check_delivery(ledger, ledger.acked_ids("a"), topic="a")
    assert report.ok and report.acked == 10 and report.read_back == 10


def test_memory_is_bounded_and_small_per_acknowledged_delivery():
    """The figure the ledger's docstring and the README state: about 120 bytes per kept acked delivery."""
    tracemalloc.start()
    try:
        ledger = DeliveryLedger(max_entries=50_000)
        before = tracemalloc.get_traced_memory()[0]
        record_batches(ledger, 50_000)
        full = tracemalloc.get_traced_memory()[0] - before
        record_batches(ledger, 200_000, first=50_000)  # four times as many again: evicted, not kept
        after = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_entry = full / 50_000
    print(f"ledger: {per_entry:.0f} bytes per kept acked delivery (ids of 10 characters)")
    assert per_entry < 160
    assert after < full * 1.1  # memory follows max_entries, not the number of messages sent
    assert len(ledger) == 50_000 and ledger.counts()[ACKED] == 250_000


def test_acknowledged_deliveries_leave_nothing_for_the_garbage_collector_to_walk():
    """A ledger of Delivery NamedTuples (never untracked by the collector) made every full collection walk
    every message sent, and the producer slowed down round after round (issue 16)."""
    ledger = DeliveryLedger()
    gc.collect()
    tracked_before = len(gc.get_objects())
    record_batches(ledger, 20_000, batch=200)
    gc.collect()
    assert len(gc.get_objects()) - tracked_before < 20_000 // 200 * 5  # a few objects per batch, none per message


def test_max_entries_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="max_entries"):
            DeliveryLedger(max_entries=bad)  # type: ignore[arg-type]
