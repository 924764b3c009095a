"""BreakerConfig: resilience4j's circuit-breaker settings, with units in the names."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Union

from ..errors import ConfigError

ExceptionMatcher = Union[type, Callable[[BaseException], bool]]


def _matches(matchers: tuple[ExceptionMatcher, ...], exc: BaseException) -> bool:
    for matcher in matchers:
        if isinstance(matcher, type):
            if isinstance(exc, matcher):
                return True
        elif matcher(exc):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class BreakerConfig:
    """Defaults are resilience4j's. Validated on construction: bad values raise ConfigError."""

    failure_rate_threshold: float = 50.0  # percent
    slow_call_rate_threshold: float = 100.0  # percent
    slow_call_duration_s: float = 60.0
    sliding_window_type: str = "count"  # "count" (last N calls) or "time" (last N seconds)
    sliding_window_size: int = 100
    minimum_number_of_calls: int = 100
    permitted_calls_in_half_open: int = 10
    wait_duration_open_s: float = 60.0
    #: f(consecutive openings, starting at 1) -> seconds to stay OPEN; overrides wait_duration_open_s
    wait_duration_backoff: Callable[[int], float] | None = None
    automatic_transition: bool = False  # OPEN -> HALF_OPEN by timer, not on the next call
    max_wait_half_open_s: float = 0.0  # 0: wait for the trial calls however long they take
    record_exceptions: tuple[ExceptionMatcher, ...] = (Exception,)
    ignore_exceptions: tuple[ExceptionMatcher, ...] = ()
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        checks = [
            (0 < self.failure_rate_threshold <= 100, "failure_rate_threshold must be in (0, 100]"),
            (0 < self.slow_call_rate_threshold <= 100, "slow_call_rate_threshold must be in (0, 100]"),
            (self.slow_call_duration_s > 0, "slow_call_duration_s must be > 0"),
            (self.sliding_window_type in ("count", "time"), "sliding_window_type must be 'count' or 'time'"),
            (self.sliding_window_size >= 1, "sliding_window_size must be >= 1"),
            (self.minimum_number_of_calls >= 1, "minimum_number_of_calls must be >= 1"),
            (self.permitted_calls_in_half_open >= 1, "permitted_calls_in_half_open must be >= 1"),
            (self.wait_duration_open_s >= 0, "wait_duration_open_s must be >= 0"),
            (self.max_wait_half_open_s >= 0, "max_wait_half_open_s must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"BreakerConfig: {message}")

    @property
    def effective_minimum_calls(self) -> int:
        """resilience4j caps the minimum at the window size for count windows."""
        if self.sliding_window_type == "count":
            return min(self.minimum_number_of_calls, self.sliding_window_size)
        return self.minimum_number_of_calls

    def wait_open_s(self, consecutive_openings: int) -> float:
        if self.wait_duration_backoff is not None:
            return max(0.0, float(self.wait_duration_backoff(consecutive_openings)))
        return self.wait_duration_open_s

    def is_ignored(self, exc: BaseException) -> bool:
        return _matches(self.ignore_exceptions, exc)

    def is_recorded(self, exc: BaseException) -> bool:
        return _matches(self.record_exceptions, exc)
