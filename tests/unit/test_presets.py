"""Resilience presets: the documented values, fresh objects per call, and our clients built from them."""

from __future__ import annotations

import asyncio

import pytest

from lab.clients import kafka as kafka_client
from lab.clients import postgres as postgres_client
from lab.errors import ConfigError
from lab.resilience import presets

from ..resilience_helpers import FakeClock

pytestmark = pytest.mark.unit

#: kind -> (failure %, window, minimum, permits, wait open s, max wait half-open s, slow s, slow %)
BREAKERS = {"database": (50, 20, 10, 3, 2.0, 10.0, 2.0, 100), "kafka": (50, 20, 10, 3, 2.0, 15.0, 5.0, 100),
            "http": (50, 50, 20, 5, 10.0, 15.0, 3.0, 80)}
#: kind -> (attempts, initial delay s, max delay s, multiplier, deadline s)
RETRIES = {"database": (8, 0.005, 0.1, 2.0, 6.0), "kafka": (3, 0.1, 1.0, 2.0, 5.0), "http": (3, 0.2, 2.0, 2.0, 10.0)}
#: kind -> (rate per s, burst)
LIMITS = {"database": (1000.0, 100), "kafka": (10_000.0, 1000), "http": (100.0, 20)}


@pytest.mark.parametrize("kind", presets.KINDS)
def test_each_preset_has_the_values_the_readme_documents(kind):
    preset = presets.preset(kind)
    b, r, limit = preset.breaker, preset.retry, preset.rate_limit
    assert preset.kind == kind
    assert (b.failure_rate_threshold, b.sliding_window_size, b.minimum_number_of_calls, b.permitted_calls_in_half_open,
            b.wait_duration_open_s, b.max_wait_half_open_s, b.slow_call_duration_s,
            b.slow_call_rate_threshold) == BREAKERS[kind]
    assert b.sliding_window_type == "count" and not b.automatic_transition
    assert (r.max_attempts, r.initial_delay_s, r.max_delay_s, r.multiplier, r.deadline_s) == RETRIES[kind]
    assert (limit.rate_per_s, limit.burst) == LIMITS[kind]


@pytest.mark.parametrize("kind", presets.KINDS)
def test_a_preset_retry_retries_nothing_until_told_what_is_safe(kind):
    attempts = []

    async def fails():
        attempts.append(1)
        raise ConnectionError("down")

    for preset in (presets.preset(kind), getattr(presets, kind)()):
        with pytest.raises(ConnectionError):
            asyncio.run(preset.retry.call(fails))
        assert len(attempts) == 1
        attempts.clear()
    with pytest.raises(ConnectionError):
        asyncio.run(presets.preset(kind, retry_on=(ConnectionError,)).retry.call(fails))
    assert len(attempts) == presets.preset(kind).retry.max_attempts


def test_the_error_tables_pass_through_to_the_breaker():
    def infra(exc: BaseException) -> bool:
        return isinstance(exc, OSError)

    preset = presets.database(record_exceptions=(infra,), ignore_exceptions=(KeyError,))
    assert preset.breaker.is_recorded(OSError()) and not preset.breaker.is_recorded(ValueError())
    assert preset.breaker.is_ignored(KeyError())


def test_every_call_builds_fresh_objects():
    first, second = presets.kafka(), presets.kafka()
    assert first == second  # same values (the rng is not compared)
    assert first.retry.rng is not second.retry.rng


def test_the_rate_limit_builds_a_limiter_with_its_rate_and_burst():
    limit = presets.http().rate_limit
    limiter = limit.limiter(clock=FakeClock())
    admitted = sum(limiter.try_acquire() for _ in range(100))
    assert (limiter.rate_per_s, limiter.burst, admitted) == (100.0, 20, 20)


@pytest.mark.parametrize("bad", ["postgres", "", "HTTP", None])
def test_an_unknown_preset_names_the_known_ones(bad):
    with pytest.raises(ConfigError, match=r"unknown resilience preset .*database, kafka, http"):
        presets.preset(bad)


def test_our_clients_are_built_from_their_presets():
    pg = presets.database(record_exceptions=postgres_client.RECORDED, ignore_exceptions=postgres_client.IGNORED)
    assert postgres_client.default_breaker() == pg.breaker
    retry = postgres_client.transaction_retry(deadline_s=4.0)
    assert (retry.max_attempts, retry.initial_delay_s, retry.max_delay_s, retry.multiplier) == RETRIES["database"][:4]
    assert retry.deadline_s == 4.0 and retry.retry_on == (postgres_client.is_retryable_transaction_error,)
    kafka = presets.kafka(record_exceptions=kafka_client.RECORDED, ignore_exceptions=kafka_client.IGNORED)
    assert kafka_client.default_breaker() == kafka.breaker
