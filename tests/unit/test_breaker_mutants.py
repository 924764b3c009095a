"""The breaker mutants of lab/scenario/mutants.py, each on a fake clock: it breaks its one property, and the
shipped breaker keeps it. (The chaos matrix shows the scenario checks catch them; this shows they still apply to
the breaker's state objects.)"""

from __future__ import annotations

import asyncio

import pytest

from lab.errors import CallNotPermitted
from lab.resilience import BreakerConfig, BreakerState, CircuitBreaker
from lab.scenario.mutants import MUTANTS, CountsCancellationsBreaker, ExtraPermitBreaker, SkipHalfOpenBreaker

from ..resilience_helpers import FakeClock, failures

pytestmark = pytest.mark.unit


def _breaker(cls: type[CircuitBreaker], clock: FakeClock) -> CircuitBreaker:
    return cls("m", BreakerConfig(failure_rate_threshold=50, sliding_window_size=10, minimum_number_of_calls=10,
                                  permitted_calls_in_half_open=3, wait_duration_open_s=30, clock=clock))


async def _half_open_permits(breaker: CircuitBreaker, clock: FakeClock) -> int:
    await failures(breaker, 10)
    clock.advance(30)
    granted = 0
    while granted < 10:
        try:
            breaker.acquire_permission()
        except CallNotPermitted:
            return granted
        granted += 1
    return granted


@pytest.mark.parametrize(("cls", "permits"), [(CircuitBreaker, 3), (ExtraPermitBreaker, 4)])
async def test_half_open_extra_permit_admits_one_trial_more(cls, permits):
    clock = FakeClock()
    assert await _half_open_permits(_breaker(cls, clock), clock) == permits


@pytest.mark.parametrize(("cls", "after_wait"), [(CircuitBreaker, BreakerState.HALF_OPEN),
                                                 (SkipHalfOpenBreaker, BreakerState.CLOSED)])
async def test_half_open_skipped_goes_from_open_to_closed(cls, after_wait):
    clock = FakeClock()
    breaker = _breaker(cls, clock)
    await failures(breaker, 10)
    clock.advance(30)
    breaker.acquire_permission()
    assert breaker.state is after_wait


@pytest.mark.parametrize(("cls", "failed"), [(CircuitBreaker, 0), (CountsCancellationsBreaker, 1)])
async def test_cancellations_counted_records_a_cancelled_call_as_a_failure(cls, failed):
    breaker = _breaker(cls, FakeClock())
    task = asyncio.ensure_future(breaker.call(asyncio.sleep, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.metrics()["failed_calls"] == failed


def test_the_mutants_tested_here_are_the_ones_registered():
    classes = {m.breaker_class for m in MUTANTS.values()}
    assert {ExtraPermitBreaker, SkipHalfOpenBreaker, CountsCancellationsBreaker} <= classes
