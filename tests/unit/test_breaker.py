"""CircuitBreaker transitions with a fake clock: exact thresholds, permits, classification."""

from __future__ import annotations

import asyncio

import pytest

from lab.errors import CallNotPermitted, ConfigError
from lab.resilience import BreakerConfig, BreakerState, CircuitBreaker, FileStateStore, SQLiteStateStore

from ..resilience_helpers import Boom, FakeClock, fail, failures, make, ok, succeed

pytestmark = pytest.mark.unit
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@pytest.fixture
def clock():
    return FakeClock()


async def test_no_rate_before_the_minimum_number_of_calls(clock):
    breaker = make(clock)
    await failures(breaker, 9)
    assert breaker.state is CLOSED and breaker.failure_rate == -1.0


async def test_rate_at_the_threshold_opens_exactly_on_the_call_that_reaches_it(clock):
    breaker = make(clock)
    await succeed(breaker, 5)
    await failures(breaker, 4)
    assert breaker.state is CLOSED  # 9 calls: below the minimum
    await failures(breaker, 1)
    assert breaker.state is OPEN and breaker.failure_rate == 50.0


async def test_rate_below_the_threshold_stays_closed(clock):
    breaker = make(clock)
    await succeed(breaker, 6)
    await failures(breaker, 4)
    assert breaker.state is CLOSED and breaker.failure_rate == 40.0


async def test_a_success_that_completes_the_minimum_can_open(clock):
    breaker = make(clock)
    await failures(breaker, 5)
    await succeed(breaker, 4)
    assert breaker.state is CLOSED
    await succeed(breaker, 1)  # 5 of 10 failed: 50%
    assert breaker.state is OPEN


async def test_count_window_forgets_old_calls(clock):
    breaker = make(clock)
    await failures(breaker, 4)
    await succeed(breaker, 16)  # the 4 failures fall out of the 10-call window
    assert breaker.failure_rate == 0.0
    await failures(breaker, 4)
    assert breaker.state is CLOSED and breaker.failure_rate == 40.0


async def test_minimum_is_capped_at_the_count_window_size(clock):
    breaker = make(clock, sliding_window_size=4, minimum_number_of_calls=100)
    await failures(breaker, 4)
    assert breaker.state is OPEN


async def test_slow_calls_open_the_breaker(clock):
    breaker = make(clock, slow_call_rate_threshold=50, slow_call_duration_s=1.0)
    for _ in range(5):
        await breaker.call(ok, clock, 1.5)
    await succeed(breaker, 4)
    assert breaker.state is CLOSED
    await breaker.call(ok, clock, 1.0)  # exactly the slow duration counts as slow
    assert breaker.state is OPEN and breaker.slow_call_rate == 60.0


async def test_open_rejects_and_counts(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    events = []
    breaker.add_listener(events.append, ("not_permitted",))
    with pytest.raises(CallNotPermitted, match="'test' is OPEN"):
        await breaker.call(ok)
    assert breaker.metrics()["not_permitted_calls"] == 1 and [e.kind for e in events] == ["not_permitted"]


async def test_open_to_half_open_on_the_next_call_after_the_wait(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    clock.advance(29.9)
    with pytest.raises(CallNotPermitted):
        await breaker.call(ok)
    clock.advance(0.1)
    assert breaker.state is OPEN  # no automatic transition: only a call moves it
    await breaker.call(ok)
    assert breaker.state is HALF_OPEN


async def test_automatic_transition_moves_to_half_open_without_a_call(clock):
    breaker = make(clock, automatic_transition=True)
    await failures(breaker, 10)
    clock.advance(30)
    assert breaker.state is HALF_OPEN


async def test_half_open_closes_after_the_permitted_successes(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    clock.advance(30)
    await succeed(breaker, 2)
    assert breaker.state is HALF_OPEN
    await succeed(breaker, 1)
    assert breaker.state is CLOSED and breaker.metrics()["buffered_calls"] == 0


async def test_half_open_reopens_when_trials_fail(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    clock.advance(30)
    await succeed(breaker, 1)
    await failures(breaker, 2)  # 2 of 3 failed: 66% >= 50%
    assert breaker.state is OPEN


async def test_half_open_admits_only_its_permits_concurrently(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    clock.advance(30)
    gate = asyncio.Event()

    async def held():
        await gate.wait()

    trials = [asyncio.create_task(breaker.call(held)) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(CallNotPermitted, match="HALF_OPEN"):
        await breaker.call(ok)
    gate.set()
    await asyncio.gather(*trials)
    assert breaker.state is CLOSED


async def test_ignored_error_releases_its_half_open_permit(clock):
    breaker = make(clock, ignore_exceptions=(KeyError,))
    await failures(breaker, 10)
    clock.advance(30)
    for _ in range(5):
        with pytest.raises(KeyError):
            await breaker.call(fail, error=KeyError("business"))
    assert breaker.state is HALF_OPEN
    await succeed(breaker, 3)
    assert breaker.state is CLOSED


async def test_ignored_business_error_neither_trips_nor_resets(clock):
    breaker = make(clock, ignore_exceptions=(KeyError,))
    for _ in range(20):
        with pytest.raises(KeyError):
            await breaker.call(fail, error=KeyError("duplicate key"))
    assert breaker.state is CLOSED and breaker.metrics()["buffered_calls"] == 0
    await failures(breaker, 10)
    assert breaker.state is OPEN
    clock.advance(30)
    await breaker.call(ok)  # HALF_OPEN, 1 permit used
    with pytest.raises(KeyError):
        await breaker.call(fail, error=KeyError("duplicate key"))
    assert breaker.state is HALF_OPEN  # an ignored error did not close it


async def test_error_neither_recorded_nor_ignored_counts_as_success(clock):
    breaker = make(clock, record_exceptions=(Boom,))
    for _ in range(10):
        with pytest.raises(ValueError):
            await breaker.call(fail, error=ValueError("not recorded"))
    assert breaker.state is CLOSED and breaker.metrics()["successful_calls"] == 10


async def test_predicates_classify_errors(clock):
    breaker = make(clock, record_exceptions=(lambda e: "timeout" in str(e),))
    for _ in range(10):
        with pytest.raises(Boom):
            await breaker.call(fail, error=Boom("read timeout"))
    assert breaker.state is OPEN


async def test_cancellation_is_neither_success_nor_failure_and_releases_the_permit(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    clock.advance(30)

    async def forever():
        await asyncio.sleep(3600)

    for _ in range(5):
        task = asyncio.create_task(breaker.call(forever))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert breaker.state is HALF_OPEN and breaker.metrics()["buffered_calls"] == 0
    await succeed(breaker, 3)
    assert breaker.state is CLOSED


async def test_keyboard_interrupt_is_neither(clock):
    breaker = make(clock)

    def interrupted():
        raise KeyboardInterrupt

    for _ in range(10):
        with pytest.raises(KeyboardInterrupt):
            breaker.call_sync(interrupted)
    assert breaker.state is CLOSED and breaker.metrics()["buffered_calls"] == 0


async def test_a_trial_that_never_ends_cannot_wedge_half_open(clock):
    breaker = make(clock, permitted_calls_in_half_open=1, max_wait_half_open_s=5)
    await failures(breaker, 10)
    clock.advance(30)

    async def hangs():
        await asyncio.sleep(3600)

    stuck = asyncio.create_task(breaker.call(hangs))
    await asyncio.sleep(0)
    assert breaker.state is HALF_OPEN
    clock.advance(5)
    assert breaker.state is OPEN
    clock.advance(30)
    await succeed(breaker, 1)
    assert breaker.state is CLOSED
    stuck.cancel()


async def test_backoff_lengthens_each_consecutive_opening(clock):
    breaker = make(clock, wait_duration_backoff=lambda n: 10 * 2 ** (n - 1), permitted_calls_in_half_open=1)
    await failures(breaker, 10)
    for wait in (10, 20, 40):
        clock.advance(wait - 0.01)
        with pytest.raises(CallNotPermitted):
            await breaker.call(ok)
        clock.advance(0.01)
        await failures(breaker, 1)  # the trial fails: open again, for longer
        assert breaker.state is OPEN


async def test_time_window_expires_old_calls(clock):
    breaker = make(clock, sliding_window_type="time", sliding_window_size=10, minimum_number_of_calls=5)
    await failures(breaker, 4)
    clock.advance(11)
    await failures(breaker, 1)
    assert breaker.state is CLOSED and breaker.metrics()["buffered_calls"] == 1
    await failures(breaker, 4)
    assert breaker.state is OPEN


async def test_a_call_that_started_before_a_transition_is_not_counted_after_it(clock):
    breaker = make(clock)
    gate = asyncio.Event()

    async def slow_success():
        await gate.wait()
        return "late"

    late = asyncio.create_task(breaker.call(slow_success))
    await asyncio.sleep(0)
    await failures(breaker, 10)
    clock.advance(30)
    await succeed(breaker, 1)  # HALF_OPEN, one trial in
    gate.set()
    assert await late == "late"
    assert breaker.metrics()["buffered_calls"] == 1 and breaker.state is HALF_OPEN


async def test_disabled_forced_open_and_metrics_only(clock):
    breaker = make(clock)
    breaker.transition_to_disabled()
    await failures(breaker, 20)
    assert breaker.state is BreakerState.DISABLED
    breaker.transition_to_forced_open()
    with pytest.raises(CallNotPermitted, match="FORCED_OPEN"):
        await breaker.call(ok)
    breaker.transition_to_metrics_only()
    exceeded = []
    breaker.add_listener(exceeded.append, ("failure_rate_exceeded",))
    await failures(breaker, 10)
    assert breaker.state is BreakerState.METRICS_ONLY and breaker.failure_rate == 100.0 and exceeded


async def test_reset_clears_everything(clock):
    breaker = make(clock)
    events = []
    breaker.add_listener(events.append, ("reset", "state_transition"))
    await failures(breaker, 10)
    breaker.reset()
    assert breaker.state is CLOSED and breaker.metrics()["buffered_calls"] == 0
    assert [e.kind for e in events] == ["state_transition", "state_transition", "reset"]


async def test_transition_events_carry_from_to_time_and_reason(clock):
    breaker = make(clock)
    events = []
    breaker.add_listener(events.append, ("state_transition", "failure_rate_exceeded"))
    await failures(breaker, 10)
    rate, transition = events
    assert rate.kind == "failure_rate_exceeded" and rate.rate == 100.0
    assert (transition.from_state, transition.to_state, transition.t) == (CLOSED, OPEN, clock.now)
    assert "failure rate 100.0% >= 50%" in transition.reason


async def test_a_failing_listener_never_breaks_a_call(clock):
    breaker = make(clock)

    def broken(event):
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    assert await breaker.call(ok) == "ok"
    await failures(breaker, 9)  # with the success: 9 of 10 failed
    assert breaker.state is OPEN
    with pytest.raises(CallNotPermitted):  # the listener fails on not_permitted too
        await breaker.call(ok)


async def test_decorators_and_context_manager(clock):
    breaker = make(clock)

    @breaker
    async def async_op(x):
        return x * 2

    @breaker
    def sync_op(x):
        return x + 1

    assert await async_op(4) == 8 and sync_op(4) == 5
    async with breaker:
        pass
    with pytest.raises(Boom):
        async with breaker:
            raise Boom()
    assert breaker.metrics()["buffered_calls"] == 4 and breaker.metrics()["failed_calls"] == 1


async def test_prometheus_export(clock):
    breaker = make(clock)
    await failures(breaker, 10)
    text = breaker.prometheus()
    assert 'resilience4j_circuitbreaker_state{name="test",state="open"} 1' in text
    assert 'resilience4j_circuitbreaker_buffered_calls{name="test",kind="failed"} 10' in text
    assert 'resilience4j_circuitbreaker_failure_rate{name="test"} 100.0' in text


@pytest.mark.parametrize("store_kind", ["file", "sqlite"])
async def test_state_survives_a_restart(tmp_path, store_kind):
    def store():
        return FileStateStore(tmp_path) if store_kind == "file" else SQLiteStateStore(tmp_path / "b.db")

    config = BreakerConfig(sliding_window_size=4, minimum_number_of_calls=4, wait_duration_open_s=60)
    first = CircuitBreaker("pg", config, store())
    await failures(first, 4)
    assert first.state is OPEN
    again = CircuitBreaker("pg", config, store())
    assert again.state is OPEN
    with pytest.raises(CallNotPermitted):
        await again.call(ok)
    other = CircuitBreaker("kafka", config, store())
    assert other.state is CLOSED


@pytest.mark.parametrize("bad, message", [
    ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
    ({"sliding_window_type": "sliding"}, "sliding_window_type"),
    ({"permitted_calls_in_half_open": 0}, "permitted_calls_in_half_open"),
    ({"slow_call_duration_s": -1}, "slow_call_duration_s"),
])
def test_bad_config_is_rejected_with_the_field_named(bad, message):
    with pytest.raises(ConfigError, match=message):
        BreakerConfig(**bad)
