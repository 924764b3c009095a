"""Adapters against the real pybreaker, aiobreaker and purgatory: their transitions become our events."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from lab.resilience import BreakerState
from lab.resilience.adapters import observe_aiobreaker, observe_purgatory, observe_pybreaker

pytestmark = pytest.mark.integration
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Down(Exception):
    pass


def transitions(events):
    return [(e.from_state, e.to_state) for e in events if e.kind == "state_transition"]


def test_pybreaker_transitions_are_observed():
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=0.2, name="users-db")
    events = []
    observe_pybreaker(breaker, events.append)

    def down():
        raise Down()

    for _ in range(2):
        with pytest.raises((Down, pybreaker.CircuitBreakerError)):
            breaker.call(down)
    import time

    time.sleep(0.25)
    assert breaker.call(lambda: "ok") == "ok"
    assert transitions(events) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert {e.breaker for e in events} == {"users-db"} and all("pybreaker" in e.reason for e in events)


async def test_aiobreaker_transitions_are_observed():
    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(fail_max=2, timeout_duration=timedelta(seconds=0.2), name="orders")
    events = []
    observe_aiobreaker(breaker, events.append)

    async def down():
        raise Down()

    async def fine():
        return "ok"

    for _ in range(2):
        with pytest.raises((Down, aiobreaker.CircuitBreakerError)):
            await breaker.call_async(down)
    await asyncio.sleep(0.25)
    assert await breaker.call_async(fine) == "ok"
    assert transitions(events) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


async def test_purgatory_transitions_are_observed():
    from purgatory import AsyncCircuitBreakerFactory
    from purgatory.domain.model import OpenedState

    factory = AsyncCircuitBreakerFactory(default_threshold=2, default_ttl=0.2)
    events = []
    observe_purgatory(factory, events.append)

    @factory("payments")
    async def down():
        raise Down()

    @factory("payments")
    async def fine():
        return "ok"

    for _ in range(2):
        with pytest.raises(Down):
            await down()
    with pytest.raises(OpenedState):
        await fine()
    await asyncio.sleep(0.25)
    assert await fine() == "ok"
    assert transitions(events) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert {e.breaker for e in events} == {"payments"}
