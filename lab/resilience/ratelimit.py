"""RateLimiter: an async token bucket that never admits more than rate*t + burst in any window t.

It is GCRA (the generic cell rate algorithm), which is a token bucket written
as one number: the theoretical arrival time of the next admission. Every
caller reserves its slot when it asks, so waiters are admitted in order and a
cancelled waiter only wastes its own slot (erring on the side of admitting less).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from ..errors import ConfigError

_EPSILON_S = 1e-9  # float sums of the interval drift by a few ulps; never wait for that


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if rate_per_s <= 0:
            raise ConfigError("RateLimiter: rate_per_s must be > 0")
        if burst < 1:
            raise ConfigError("RateLimiter: burst must be >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        self._tolerance = (burst - 1) * self._interval
        self._tat = float("-inf")  # theoretical arrival time of the next admission
        self._clock = clock
        self._sleep = sleep

    def reserve(self) -> float:
        """Reserve the next slot; returns the time it may proceed (maybe now)."""
        now = self._clock()
        tat = max(self._tat, now)
        admit_at = max(now, tat - self._tolerance)
        if admit_at - now <= _EPSILON_S:
            admit_at = now
        self._tat = tat + self._interval
        return admit_at

    def try_acquire(self) -> bool:
        """Admit now if the bucket allows it, without waiting or reserving."""
        now = self._clock()
        tat = max(self._tat, now)
        if tat - self._tolerance > now + _EPSILON_S:
            return False
        self._tat = tat + self._interval
        return True

    async def acquire(self) -> None:
        delay = self.reserve() - self._clock()
        if delay > 0:
            await self._sleep(delay)

    async def __aenter__(self) -> "RateLimiter":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
