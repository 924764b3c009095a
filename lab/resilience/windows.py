"""Sliding windows of call outcomes, as resilience4j keeps them.

Count-based: a ring of the last N outcomes. Time-based: N one-second buckets
(partial aggregations); a bucket older than the window is emptied before it is
reused. Both keep running totals, so recording is O(1) and reading the rates
needs no scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Outcome codes: bit 0 = failed, bit 1 = slow.
SUCCESS, FAILURE, SLOW_SUCCESS, SLOW_FAILURE = 0, 1, 2, 3


@dataclass(frozen=True)
class Snapshot:
    calls: int
    failed: int
    slow: int
    slow_failed: int

    @property
    def successful(self) -> int:
        return self.calls - self.failed

    def failure_rate(self, minimum_calls: int) -> float:
        """Percent, or -1.0 while fewer than ``minimum_calls`` are recorded (resilience4j's convention)."""
        if self.calls == 0 or self.calls < minimum_calls:
            return -1.0
        return self.failed * 100.0 / self.calls

    def slow_call_rate(self, minimum_calls: int) -> float:
        if self.calls == 0 or self.calls < minimum_calls:
            return -1.0
        return self.slow * 100.0 / self.calls


class CountWindow:
    """The last ``size`` outcomes.

    ``full_of_successes`` is true while the window is full and holds only
    successes: one more success would leave it exactly as it is (the ring of
    equal outcomes only turns), so a caller on a hot path may skip recording it.
    """

    __slots__ = ("size", "ring", "pos", "calls", "failed", "slow", "slow_failed", "full_of_successes")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ring: list[int] = [-1] * size
        self.pos = 0
        self.calls = self.failed = self.slow = self.slow_failed = 0
        self.full_of_successes = False

    def record(self, outcome: int, now: float = 0.0) -> None:
        ring = self.ring
        pos = self.pos
        old = ring[pos]
        ring[pos] = outcome
        pos += 1
        self.pos = 0 if pos == self.size else pos
        if old == outcome:  # one outcome replaced by the same: every total stays
            return
        if old < 0:
            self.calls += 1
        elif old:
            self.failed -= old & 1
            self.slow -= old >> 1
            self.slow_failed -= old == SLOW_FAILURE
        if outcome:
            self.failed += outcome & 1
            self.slow += outcome >> 1
            self.slow_failed += outcome == SLOW_FAILURE
        self.full_of_successes = self.calls == self.size and not (self.failed or self.slow)

    def record_successes(self, count: int) -> None:
        """``count`` quick successes, as many ``record(SUCCESS)`` calls would leave the window."""
        if count >= self.size:
            self.ring = [SUCCESS] * self.size
            self.pos = 0
            self.calls, self.failed, self.slow, self.slow_failed = self.size, 0, 0, 0
            self.full_of_successes = True
            return
        for _ in range(count):
            self.record(SUCCESS)

    def snapshot(self, now: float = 0.0) -> Snapshot:
        return Snapshot(self.calls, self.failed, self.slow, self.slow_failed)


class TimeWindow:
    """Outcomes of the last ``seconds`` seconds, in one-second buckets."""

    #: every success lands in its second's bucket, so none may be skipped
    full_of_successes = False

    __slots__ = ("size", "epochs", "counts", "calls", "failed", "slow", "slow_failed")

    def __init__(self, seconds: int) -> None:
        self.size = seconds
        self.epochs: list[int] = [-1] * seconds
        self.counts: list[list[int]] = [[0, 0, 0, 0] for _ in range(seconds)]  # calls, failed, slow, slow_failed
        self.calls = self.failed = self.slow = self.slow_failed = 0

    def _expire(self, epoch: int) -> None:
        for index in range(self.size):
            bucket_epoch = self.epochs[index]
            if bucket_epoch >= 0 and bucket_epoch <= epoch - self.size:
                self._drop(index)

    def _drop(self, index: int) -> None:
        calls, failed, slow, slow_failed = self.counts[index]
        self.calls -= calls
        self.failed -= failed
        self.slow -= slow
        self.slow_failed -= slow_failed
        self.counts[index] = [0, 0, 0, 0]
        self.epochs[index] = -1

    def record(self, outcome: int, now: float) -> None:
        epoch = math.floor(now)
        self._expire(epoch)
        index = epoch % self.size
        if self.epochs[index] != epoch:
            self._drop(index)
            self.epochs[index] = epoch
        bucket = self.counts[index]
        failed, slow, slow_failed = outcome & 1, outcome >> 1, int(outcome == SLOW_FAILURE)
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        bucket[3] += slow_failed
        self.calls += 1
        self.failed += failed
        self.slow += slow
        self.slow_failed += slow_failed

    def snapshot(self, now: float) -> Snapshot:
        self._expire(math.floor(now))
        return Snapshot(self.calls, self.failed, self.slow, self.slow_failed)
