"""1,000 concurrent tasks against a HALF_OPEN breaker: at most the permitted trial calls run."""

from __future__ import annotations

import asyncio

import pytest

from lab.errors import CallNotPermitted
from lab.resilience import BreakerConfig, BreakerState, CircuitBreaker

pytestmark = pytest.mark.race


@pytest.mark.parametrize("permits", [1, 5, 25])
async def test_half_open_never_runs_more_trials_than_permitted(permits):
    breaker = CircuitBreaker("race", BreakerConfig(sliding_window_size=10, minimum_number_of_calls=10,
                                                    permitted_calls_in_half_open=permits, wait_duration_open_s=0))
    breaker.transition_to_half_open()
    running = peak = executed = 0

    async def trial():
        nonlocal running, peak, executed
        running += 1
        executed += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    async def attempt():
        try:
            await breaker.call(trial)
            return True
        except CallNotPermitted:
            return False

    results = await asyncio.gather(*(attempt() for _ in range(1000)))
    assert peak <= permits and executed == permits == sum(results)
    assert breaker.state is BreakerState.CLOSED


async def test_cancellation_storm_in_half_open_leaks_no_permit():
    breaker = CircuitBreaker("storm", BreakerConfig(permitted_calls_in_half_open=3, wait_duration_open_s=0))
    breaker.transition_to_half_open()

    async def slow():
        await asyncio.sleep(10)

    for _ in range(50):
        tasks = [asyncio.create_task(breaker.call(slow)) for _ in range(20)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert breaker.state is BreakerState.HALF_OPEN

    async def quick():
        return 1

    assert [await breaker.call(quick) for _ in range(3)] == [1, 1, 1]
    assert breaker.state is BreakerState.CLOSED
