"""RetryPolicy: exponential backoff with full jitter, attempts, an overall deadline, retry-on predicates.

Built on tenacity (its AsyncRetrying loop and its full-jitter wait). What it adds:
the deadline bounds everything — each attempt runs with only the time left,
and no sleep is longer than what remains — so a call under a policy with
``deadline_s=2`` returns or raises within about 2 s, whatever the callee does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from typing import Any, Awaitable, Callable, TypeVar

import tenacity

from ..errors import ConfigError
from ..errors import DeadlineExceeded as DeadlineExceeded  # re-exported from its old home
from .config import ExceptionMatcher, _matches

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_delay_s: float = 0.1  # the cap of the first backoff (full jitter: uniform in [0, cap])
    max_delay_s: float = 5.0
    multiplier: float = 2.0
    deadline_s: float | None = None  # overall, from the first attempt
    retry_on: tuple[ExceptionMatcher, ...] = (Exception,)
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = dataclasses.field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("RetryPolicy: max_attempts must be >= 1")
        if self.initial_delay_s < 0 or self.max_delay_s < 0 or self.multiplier < 1:
            raise ConfigError("RetryPolicy: delays must be >= 0 and multiplier >= 1")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ConfigError("RetryPolicy: deadline_s must be > 0")

    def backoff_cap_s(self, attempt: int) -> float:
        """The upper bound of the sleep after ``attempt`` (1-based) failed."""
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (attempt - 1))

    def delay_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, cap]."""
        return self.rng.uniform(0.0, self.backoff_cap_s(attempt))

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit, DeadlineExceeded)):
            return False
        return _matches(self.retry_on, exc)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        started = self.clock()
        deadline = None if self.deadline_s is None else started + self.deadline_s

        def remaining() -> float | None:
            return None if deadline is None else deadline - self.clock()

        def wait(state: tenacity.RetryCallState) -> float:
            delay = self.delay_s(state.attempt_number)
            left = remaining()
            return delay if left is None else max(0.0, min(delay, left))

        def stop(state: tenacity.RetryCallState) -> bool:
            left = remaining()
            return state.attempt_number >= self.max_attempts or (left is not None and left <= 0)

        retrying = tenacity.AsyncRetrying(
            stop=stop, wait=wait, reraise=True,
            retry=tenacity.retry_if_exception(self.should_retry),
        )
        async for attempt in retrying:
            with attempt:
                left = remaining()
                if left is not None and left <= 0:
                    raise DeadlineExceeded(f"deadline of {self.deadline_s:g}s passed")
                if left is None:
                    return await fn(*args, **kwargs)
                try:
                    return await asyncio.wait_for(fn(*args, **kwargs), left)
                except asyncio.TimeoutError:
                    if self.clock() >= deadline:  # type: ignore[operator]
                        raise DeadlineExceeded(f"deadline of {self.deadline_s:g}s passed during attempt "
                                               f"{attempt.retry_state.attempt_number}") from None
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
