"""The breaker's states as objects: one class per state, a new object per transition, each with its own window."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.errors import CallNotPermitted
from lab.resilience import BreakerState
from lab.resilience.states import STATES, Closed, HalfOpen, Open
from lab.resilience.windows import FAILURE, SLOW_FAILURE, CountWindow

from ..resilience_helpers import FakeClock, failures, make, ok, succeed

pytestmark = pytest.mark.unit


@pytest.fixture
def clock():
    return FakeClock()


def test_every_state_has_one_class_and_it_names_its_state():
    assert set(STATES) == set(BreakerState)
    for value, cls in STATES.items():
        assert cls.value is value


async def test_each_transition_swaps_in_a_new_state_object_of_the_state_class(clock):
    breaker = make(clock)
    seen = [breaker._state]
    await failures(breaker, 10)
    seen.append(breaker._state)
    clock.advance(30)
    breaker.poll()
    await succeed(breaker)  # OPEN -> HALF_OPEN on the call after the wait
    seen.append(breaker._state)
    await succeed(breaker, 2)
    seen.append(breaker._state)
    assert [type(s) for s in seen] == [Closed, Open, HalfOpen, Closed]
    assert len({id(s) for s in seen}) == 4
    assert [s.generation for s in seen] == sorted({s.generation for s in seen})  # numbered in order


async def test_open_keeps_the_window_that_opened_it_and_half_open_starts_its_own(clock):
    breaker = make(clock)
    closed_window = breaker._state.window
    await failures(breaker, 10)
    assert breaker._state.window is closed_window and breaker.failure_rate == 100.0
    clock.advance(30)
    await succeed(breaker)
    trial_window = breaker._state.window
    assert isinstance(trial_window, CountWindow) and trial_window.size == 3 and trial_window.calls == 1


async def test_a_call_created_while_closed_and_started_after_opening_is_refused(clock):
    breaker = make(clock)
    pending = breaker.call(ok)  # the coroutine exists, nothing has run yet
    await failures(breaker, 10)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CallNotPermitted, match="OPEN"):
        await pending
    assert breaker.not_permitted_calls == 1


async def test_a_call_created_while_open_and_started_after_closing_goes_through(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    pending = breaker.call(ok)
    breaker.transition_to_closed()
    assert await pending == "ok"
    assert breaker.metrics()["buffered_calls"] == 1


async def test_a_call_handed_to_a_stale_state_is_counted_by_the_current_one_only(clock):
    breaker = make(clock)
    old = breaker._state
    breaker.reset()  # a new CLOSED object
    started = asyncio.get_running_loop().create_future()

    async def slow_failure():
        started.set_result(None)
        await asyncio.sleep(0)
        raise RuntimeError("late")

    task = asyncio.ensure_future(old.call(slow_failure))  # handed on to the current state
    await started
    await failures(breaker, 1)
    with pytest.raises(RuntimeError):
        await task
    assert old.window.calls == 0 and breaker.metrics()["failed_calls"] == 2


@given(st.lists(st.sampled_from([0, 1, 2, 3]), max_size=60), st.integers(1, 7))
def test_count_window_totals_always_match_a_recount_of_its_last_outcomes(outcomes, size):
    window = CountWindow(size)
    for outcome in outcomes:
        window.record(outcome)
    last = outcomes[-size:] if outcomes else []
    assert (window.calls, window.failed, window.slow, window.slow_failed) == (
        len(last), sum(o & 1 for o in last), sum(o >> 1 for o in last), sum(o == SLOW_FAILURE for o in last))
    assert FAILURE == 1  # the outcome codes the recount assumes


def _oldest_first(window: CountWindow) -> list[int]:
    return window.ring[window.pos:] + window.ring[:window.pos]


@given(st.lists(st.sampled_from([0, 0, 0, 1, 2, 3]), max_size=80), st.integers(1, 7))
def test_skipping_a_success_on_a_window_full_of_successes_changes_nothing(outcomes, size):
    recorded, skipping = CountWindow(size), CountWindow(size)
    for outcome in outcomes:
        recorded.record(outcome)
        if not (outcome == 0 and skipping.full_of_successes):  # what the CLOSED hot path does
            skipping.record(outcome)
        assert recorded.full_of_successes == (recorded.calls == size and not recorded.failed and not recorded.slow)
        assert _oldest_first(skipping) == _oldest_first(recorded)
        assert skipping.snapshot() == recorded.snapshot()
