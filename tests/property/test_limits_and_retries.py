"""RateLimiter never admits more than rate*t + burst in any window; retry delays stay in bounds."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.resilience.ratelimit import RateLimiter
from lab.resilience.retry import DeadlineExceeded, RetryPolicy

from ..resilience_helpers import Boom, FakeClock

pytestmark = pytest.mark.property


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(0.5, 1000), burst=st.integers(1, 20),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_rate_limiter_bound_holds_in_every_window(rate, burst, gaps):
    clock = FakeClock(0.0)
    limiter = RateLimiter(rate, burst, clock=clock)
    admitted = []
    for gap in gaps:
        clock.advance(gap)
        admitted.append(limiter.reserve())
    admitted.sort()
    for i in range(len(admitted)):
        for j in range(i, len(admitted)):
            window = admitted[j] - admitted[i]
            assert j - i + 1 <= rate * window + burst + 1e-6


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(1, 100), burst=st.integers(1, 10))
def test_idle_limiter_admits_a_full_burst_at_once(rate, burst):
    limiter = RateLimiter(rate, burst, clock=FakeClock(0.0))
    assert all(limiter.try_acquire() for _ in range(burst))
    assert not limiter.try_acquire()


async def test_waiters_are_admitted_in_order_at_the_rate():
    limiter = RateLimiter(50, burst=1)
    started = time.monotonic()
    order = []

    async def one(i):
        await limiter.acquire()
        order.append((i, time.monotonic() - started))

    await asyncio.gather(*(one(i) for i in range(10)))
    assert [i for i, _ in order] == list(range(10))
    assert order[-1][1] >= 9 / 50 - 0.005  # 10 admissions at 50/s need 180 ms


@settings(max_examples=200, deadline=None)
@given(initial=st.floats(0.001, 1), multiplier=st.floats(1, 4), cap=st.floats(0.001, 10),
       attempt=st.integers(1, 30), seed=st.integers(0, 2**32))
def test_full_jitter_delays_stay_within_the_exponential_cap(initial, multiplier, cap, attempt, seed):
    policy = RetryPolicy(initial_delay_s=initial, multiplier=multiplier, max_delay_s=cap, rng=random.Random(seed))
    bound = min(cap, initial * multiplier ** (attempt - 1))
    assert policy.backoff_cap_s(attempt) == pytest.approx(bound)
    assert 0 <= policy.delay_s(attempt) <= bound


async def test_retry_stops_after_max_attempts_and_reraises():
    calls = []

    async def always_fails():
        calls.append(1)
        raise Boom()

    with pytest.raises(Boom):
        await RetryPolicy(max_attempts=4, initial_delay_s=0.001).call(always_fails)
    assert len(calls) == 4


async def test_retry_on_predicate_skips_other_errors():
    calls = []

    async def not_retryable():
        calls.append(1)
        raise KeyError("business")

    with pytest.raises(KeyError):
        await RetryPolicy(max_attempts=5, retry_on=(Boom,)).call(not_retryable)
    assert len(calls) == 1


async def test_retry_succeeds_after_transient_failures():
    attempts = iter([Boom(), Boom(), "ok"])

    async def flaky():
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await RetryPolicy(max_attempts=3, initial_delay_s=0.001).call(flaky) == "ok"


async def test_overall_deadline_bounds_a_hanging_callee():
    async def hangs():
        await asyncio.sleep(60)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await RetryPolicy(max_attempts=10, deadline_s=0.3).call(hangs)
    assert time.monotonic() - started < 0.3 + 0.2


async def test_overall_deadline_bounds_sleeps_between_attempts():
    async def fails():
        raise Boom()

    started = time.monotonic()
    with pytest.raises((Boom, DeadlineExceeded)):
        await RetryPolicy(max_attempts=100, initial_delay_s=0.2, multiplier=2, deadline_s=0.5).call(fails)
    assert time.monotonic() - started < 0.5 + 0.2
