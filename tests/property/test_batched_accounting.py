"""The producer's batched accounting equals the one-at-a-time accounting it replaces (Hypothesis).

The producer settles an acknowledged aiokafka batch with one breaker report
(``record_successes``) and one histogram update (``observe_since``), and picks
partitions itself (``partition_for``); each must give what the per-message
calls gave.
"""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.clients.inflight import partition_for
from lab.clients.observability import LATENCY_BUCKETS_S, Histogram
from lab.resilience import BreakerConfig, CircuitBreaker

from ..resilience_helpers import Boom, FakeClock

pytestmark = pytest.mark.property

SLOW_S = 1.0


def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("b", BreakerConfig(failure_rate_threshold=50, slow_call_rate_threshold=60,
                                             slow_call_duration_s=SLOW_S, sliding_window_size=8,
                                             minimum_number_of_calls=4, permitted_calls_in_half_open=2,
                                             wait_duration_open_s=5, clock=clock))


def observable(b: CircuitBreaker) -> tuple:
    return b.state, b.metrics(), b._state.generation


history = st.lists(st.sampled_from(["ok", "fail", "slow_ok"]), max_size=12)
batch = st.lists(st.floats(min_value=0.0, max_value=2 * SLOW_S, allow_nan=False), min_size=1, max_size=30)


def play(b: CircuitBreaker, outcomes: list[str]) -> None:
    for outcome in outcomes:
        if outcome == "fail":
            b.on_error(Boom(), 0.1)
        else:
            b.on_success(1.5 * SLOW_S if outcome == "slow_ok" else 0.1)


@settings(max_examples=300, deadline=None)
@given(before=history, ages_s=batch, all_quick=st.booleans(), stale_generation=st.booleans(), after=history)
def test_record_successes_is_on_success_for_each(before, ages_s, all_quick, stale_generation, after):
    if all_quick:  # the producer's common case, which takes the one-step path
        ages_s = [age / 2.5 for age in ages_s]
    clocks = FakeClock(), FakeClock()
    batched, one_by_one = breaker(clocks[0]), breaker(clocks[1])
    for b in (batched, one_by_one):
        play(b, before)
    generation = batched.closed_generation()
    if generation is None:
        return  # not CLOSED: the producer takes permits then, not generations
    assert generation == one_by_one.closed_generation()
    if stale_generation:
        for b in (batched, one_by_one):
            b.transition_to_open()
            b.transition_to_closed()
    now = clocks[0].now
    started = sorted(now - age for age in ages_s)  # the producer's sends are in enqueue order
    batched.record_successes(generation, started)
    for t in started:
        one_by_one.on_success(now - t, generation)
    assert observable(batched) == observable(one_by_one)
    for b in (batched, one_by_one):  # and the window they leave behind weighs the same later on
        play(b, after)
    assert observable(batched) == observable(one_by_one)


def test_record_successes_tells_success_listeners_each_duration():
    clock = FakeClock()
    b = breaker(clock)
    heard = []
    b.add_listener(lambda event: heard.append(event.duration_s), ("success",))
    b.record_successes(b.closed_generation(), [clock.now - 0.5, clock.now - 0.25])
    assert heard == [0.5, 0.25]


@settings(max_examples=300, deadline=None)
@given(latencies_ms=st.lists(st.integers(min_value=0, max_value=10_000), max_size=200))
def test_observe_since_counts_as_observe_does(latencies_ms):
    now = 5000.0
    # values a hair off the bucket bounds: at an exact bound the two may round differently (documented)
    latencies = [ms / 1000 + 1e-7 for ms in latencies_ms]
    batched, one_by_one = Histogram(), Histogram()
    batched.observe_since(now, [now - latency for latency in latencies])
    for latency in latencies:
        one_by_one.observe(latency)
    assert batched.counts == one_by_one.counts and batched.count == one_by_one.count
    assert batched.sum == pytest.approx(one_by_one.sum, abs=1e-6)
    assert len(batched.counts) == len(LATENCY_BUCKETS_S) + 1


@settings(max_examples=500, deadline=None)
@given(key=st.binary(min_size=0, max_size=40), count=st.integers(min_value=1, max_value=64))
def test_partition_for_is_aiokafkas_default_choice(key, count):
    partitions = list(range(count))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
