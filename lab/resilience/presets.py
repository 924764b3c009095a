"""Named presets: breaker, retry and rate-limit settings per kind of service (database, kafka, http).

    preset = presets.database(record_exceptions=RECORDED, ignore_exceptions=IGNORED,
                              retry_on=(is_retryable_transaction_error,))
    breaker = CircuitBreaker("pg", preset.breaker)
    rows = await preset.retry.call(run_transaction)
    limiter = preset.rate_limit.limiter()

A preset fixes the *shape* (thresholds, windows, waits, backoff, deadline,
rate); what counts as a failure or as safe to retry is the caller's, because
only the client knows its driver's errors (this layer imports no driver). So
``retry_on`` defaults to nothing: a preset never retries until the caller says
what is safe to run again. Every call builds fresh objects (a RetryPolicy owns
its random generator), so no two users share state. The values and the reasons
for them are in the README ("Resilience presets"); the tests pin them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from ..errors import ConfigError
from .config import BreakerConfig, ExceptionMatcher
from .ratelimit import RateLimiter
from .retry import RetryPolicy

KINDS = ("database", "kafka", "http")


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """A rate limiter's settings: at most ``rate_per_s`` * t + ``burst`` admissions in any window t."""

    rate_per_s: float
    burst: int

    def limiter(self, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
        return RateLimiter(self.rate_per_s, self.burst, clock=clock)


@dataclasses.dataclass(frozen=True)
class Preset:
    """The settings of one kind of service; ``kind`` is its name in ``KINDS``."""

    kind: str
    breaker: BreakerConfig
    retry: RetryPolicy
    rate_limit: RateLimit


Matchers = tuple[ExceptionMatcher, ...]


def database(record_exceptions: Matchers = (Exception,), ignore_exceptions: Matchers = (),
             retry_on: Matchers = ()) -> Preset:
    """A database behind a connection pool (the lab's PostgresClient): commands bounded at 2 s."""
    return Preset(
        "database",
        BreakerConfig(failure_rate_threshold=50, sliding_window_size=20, minimum_number_of_calls=10,
                      permitted_calls_in_half_open=3, wait_duration_open_s=2.0, max_wait_half_open_s=10.0,
                      slow_call_duration_s=2.0, slow_call_rate_threshold=100,
                      record_exceptions=record_exceptions, ignore_exceptions=ignore_exceptions),
        RetryPolicy(max_attempts=8, initial_delay_s=0.005, max_delay_s=0.1, multiplier=2.0, deadline_s=6.0,
                    retry_on=retry_on),
        RateLimit(rate_per_s=1000.0, burst=100),
    )


def kafka(record_exceptions: Matchers = (Exception,), ignore_exceptions: Matchers = (),
          retry_on: Matchers = ()) -> Preset:
    """A Kafka producer (the lab's KafkaProducer): each send resolves within a 5 s deadline."""
    return Preset(
        "kafka",
        BreakerConfig(failure_rate_threshold=50, sliding_window_size=20, minimum_number_of_calls=10,
                      permitted_calls_in_half_open=3, wait_duration_open_s=2.0, max_wait_half_open_s=15.0,
                      slow_call_duration_s=5.0, slow_call_rate_threshold=100,
                      record_exceptions=record_exceptions, ignore_exceptions=ignore_exceptions),
        RetryPolicy(max_attempts=3, initial_delay_s=0.1, max_delay_s=1.0, multiplier=2.0, deadline_s=5.0,
                    retry_on=retry_on),
        RateLimit(rate_per_s=10_000.0, burst=1000),
    )


def http(record_exceptions: Matchers = (Exception,), ignore_exceptions: Matchers = (),
         retry_on: Matchers = ()) -> Preset:
    """An HTTP service called request by request (a dependency the lab drives, e.g. with Locust)."""
    return Preset(
        "http",
        BreakerConfig(failure_rate_threshold=50, sliding_window_size=50, minimum_number_of_calls=20,
                      permitted_calls_in_half_open=5, wait_duration_open_s=10.0, max_wait_half_open_s=15.0,
                      slow_call_duration_s=3.0, slow_call_rate_threshold=80,
                      record_exceptions=record_exceptions, ignore_exceptions=ignore_exceptions),
        RetryPolicy(max_attempts=3, initial_delay_s=0.2, max_delay_s=2.0, multiplier=2.0, deadline_s=10.0,
                    retry_on=retry_on),
        RateLimit(rate_per_s=100.0, burst=20),
    )


def preset(kind: str, record_exceptions: Matchers = (Exception,), ignore_exceptions: Matchers = (),
           retry_on: Matchers = ()) -> Preset:
    """The preset called ``kind``; ConfigError naming the known kinds for any other name."""
    builders = {"database": database, "kafka": kafka, "http": http}
    try:
        build = builders[kind]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown resilience preset {kind!r}; choose from {', '.join(KINDS)}") from None
    return build(record_exceptions=record_exceptions, ignore_exceptions=ignore_exceptions, retry_on=retry_on)
