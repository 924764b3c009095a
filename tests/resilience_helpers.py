"""Shared pieces for breaker tests: a fake clock and guarded calls that advance it."""

from __future__ import annotations

from lab.resilience import BreakerConfig, CircuitBreaker


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


def make(clock: FakeClock, **overrides) -> CircuitBreaker:
    settings = dict(failure_rate_threshold=50, sliding_window_size=10, minimum_number_of_calls=10,
                    permitted_calls_in_half_open=3, wait_duration_open_s=30, slow_call_duration_s=1.0,
                    clock=clock)
    settings.update(overrides)
    return CircuitBreaker("test", BreakerConfig(**settings))


async def ok(clock: FakeClock | None = None, took_s: float = 0.0):
    if clock is not None:
        clock.advance(took_s)
    return "ok"


async def fail(clock: FakeClock | None = None, took_s: float = 0.0, error: BaseException | None = None):
    if clock is not None:
        clock.advance(took_s)
    raise error or Boom("down")


async def succeed(breaker: CircuitBreaker, times: int = 1, **kw) -> None:
    for _ in range(times):
        await breaker.call(ok, **kw)


async def failures(breaker: CircuitBreaker, times: int = 1, **kw) -> None:
    for _ in range(times):
        try:
            await breaker.call(fail, **kw)
        except Boom:
            pass
