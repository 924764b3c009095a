"""The states of a CircuitBreaker, one object each, resilience4j's CircuitBreakerState way.

A breaker holds exactly one state object; a transition replaces it with a new
one. Each state owns:

* ``acquire()``: permission for one call. It returns the state that grants it
  (itself, or the HALF_OPEN that an elapsed OPEN turns into) or raises
  CallNotPermitted;
* ``record(outcome, now)``: what a finished call does to this state's window,
  and the transition it may cause;
* ``release()``: a call that is counted neither way gives back what it took;
* ``poll(now)``: the transitions that time alone causes;
* its window, created when the state is entered (OPEN and FORCED_OPEN keep the
  window they were entered from, so the rates that opened the breaker stay
  readable).

Guaranteed: a state that is no longer the breaker's current one never records
into a window or causes a transition, so a call that started before a state
change is not counted in the new state. Every state has its own ``generation``
number (the breaker's count of states entered), which is what a ``Permit``
carries.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar, Union

from ..errors import CallNotPermitted
from .events import BreakerEvent, BreakerState
from .windows import SUCCESS, CountWindow, TimeWindow

if TYPE_CHECKING:
    from .breaker import CircuitBreaker

Window = Union[CountWindow, TimeWindow]
T = TypeVar("T")


class State:
    """What every state shares; the subclasses below each change what differs."""

    value: BreakerState
    #: CLOSED, METRICS_ONLY and DISABLED let every call through: their ``acquire()`` is ``self``, so the
    #: breaker's entry points (``acquire_permission``, ``call_sync``, ``async with``) skip the call.
    admits_all = False

    __slots__ = ("breaker", "generation", "window", "_timer")

    def __init__(self, breaker: CircuitBreaker, generation: int, window: Window) -> None:
        self.breaker = breaker
        self.generation = generation
        self.window = window
        self._timer: asyncio.TimerHandle | None = None

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    def window_for(cls, breaker: CircuitBreaker, previous: Window | None) -> Window:
        """The window this state starts with: a fresh one of the configured kind, unless a state says otherwise."""
        config = breaker.config
        if config.sliding_window_type == "time":
            return TimeWindow(config.sliding_window_size)
        return CountWindow(config.sliding_window_size)

    def enter(self, now: float) -> None:
        """Called once, right after the breaker switched to this state (not on restore)."""

    def exit(self) -> None:
        """Called once, when the breaker leaves this state: stops the state's timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def poll(self, now: float) -> None:
        """Apply the transitions that time alone causes in this state."""

    def wait_left_s(self, now: float) -> float:
        """How much longer this state refuses calls on its own (OPEN's wait); what a store keeps."""
        return 0.0

    def restore(self, now: float, wait_left_s: float) -> None:
        """Taken up from a store instead of entered: no events, no timers, no opening counted."""

    def _schedule(self, delay_s: float) -> None:
        """A real timer when a loop runs and the clock is the real one; else poll() on use."""
        if self.breaker.config.clock is not time.monotonic:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, delay_s), self.breaker.poll)

    # -- calls -----------------------------------------------------------------------

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``CircuitBreaker.call`` while this state is current: ask ``acquire()``, time the call, report it."""
        breaker = self.breaker
        current = breaker._state
        if current is not self:  # created while this state was current, started after a transition
            return await current.call(fn, *args, **kwargs)
        state = self.acquire()
        clock = breaker.config.clock
        start = clock()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            breaker.on_error(exc, clock() - start, state.generation)
            raise
        breaker.on_success(clock() - start, state.generation)
        return result

    def acquire(self) -> State:
        """The state that grants one call (counted by it), or CallNotPermitted."""
        return self

    def release(self) -> None:
        """A call granted by this state ended counted neither way (cancelled, ignored error)."""

    def record(self, outcome: int, now: float) -> None:
        """A call counted by this state (which is still current) finished with ``outcome``. Here (OPEN,
        FORCED_OPEN): an outcome reported while refusing calls goes into the kept window and decides nothing."""
        self.window.record(outcome, now)

    def record_successes(self, now: float, started_at: list[float]) -> bool:
        """Record these successes (calls started at ``started_at``, ended ``now``) in one step, if this state can
        do so with the very result of recording them one by one; else record nothing and say False."""
        return False

    def reject(self) -> CallNotPermitted:
        """Count a refused call, tell listeners, and return the error to raise."""
        breaker = self.breaker
        breaker.not_permitted_calls += 1
        if breaker.listeners.by_kind["not_permitted"]:
            breaker.listeners.emit(BreakerEvent("not_permitted", breaker.name, breaker.config.clock()))
        return CallNotPermitted(breaker.name, self.value.value)

    # -- rates -----------------------------------------------------------------------

    @property
    def minimum_calls(self) -> int:
        """How many calls the window needs before it has a rate."""
        return self.breaker.config.effective_minimum_calls

    def _rates_exceeded(self, now: float) -> str | None:
        """None below the minimum number of calls; else the reason naming the threshold the window reaches, or ""
        when it reaches none. Emits the rate-exceeded events either way."""
        window = self.window
        calls = window.calls if isinstance(window, CountWindow) else window.snapshot(now).calls
        if calls < self.minimum_calls:
            return None
        breaker = self.breaker
        config = breaker.config
        by_kind = breaker.listeners.by_kind
        failure_rate = window.failed * 100.0 / calls
        slow_rate = window.slow * 100.0 / calls
        failing = failure_rate >= config.failure_rate_threshold
        slow = slow_rate >= config.slow_call_rate_threshold
        if failing and by_kind["failure_rate_exceeded"]:
            breaker.listeners.emit(BreakerEvent("failure_rate_exceeded", breaker.name, now, rate=failure_rate))
        if slow and by_kind["slow_call_rate_exceeded"]:
            breaker.listeners.emit(BreakerEvent("slow_call_rate_exceeded", breaker.name, now, rate=slow_rate))
        if failing:
            return f"failure rate {failure_rate:.1f}% >= {config.failure_rate_threshold:g}%"
        if slow:
            return f"slow call rate {slow_rate:.1f}% >= {config.slow_call_rate_threshold:g}%"
        return ""


class Closed(State):
    """Every call goes through; the window's rates, once it holds the minimum, decide when to open."""

    value = BreakerState.CLOSED
    admits_all = True
    __slots__ = ("_clock", "_slow_s", "_success_listeners")

    def __init__(self, breaker: CircuitBreaker, generation: int, window: Window) -> None:
        super().__init__(breaker, generation, window)
        self._clock = breaker.config.clock
        self._slow_s = breaker.config.slow_call_duration_s
        self._success_listeners = breaker.listeners.by_kind["success"]  # the same list, kept current

    def enter(self, now: float) -> None:
        self.breaker._consecutive_openings = 0

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """The hot path of the whole lab: no permission to ask, and a quick success with nobody listening is at
        most one window update (none while the window is full of successes)."""
        breaker = self.breaker
        if breaker._state is not self:  # created while CLOSED, started after a transition
            return await breaker._state.call(fn, *args, **kwargs)
        clock = self._clock
        start = clock()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            breaker.on_error(exc, clock() - start, self.generation)
            raise
        end = clock()
        if end - start < self._slow_s and breaker._state is self and not self._success_listeners:
            window = self.window
            if not window.full_of_successes:  # else one more success would change nothing in it
                window.record(SUCCESS, end)
                if window.failed or window.slow:
                    self._open_if_exceeded(end)
        else:
            breaker.on_success(end - start, self.generation)
        return result

    def record(self, outcome: int, now: float) -> None:
        window = self.window
        window.record(outcome, now)
        if outcome or window.failed or window.slow:  # a success among successes cannot open the breaker
            self._open_if_exceeded(now)

    def record_successes(self, now: float, started_at: list[float]) -> bool:
        """One step when none is slow, nobody listens for successes and the count window holds no failed or slow
        call (then no success can change the state)."""
        window = self.window
        if (isinstance(window, CountWindow) and not self._success_listeners and not window.failed
                and not window.slow and min(started_at) > now - self._slow_s):
            window.record_successes(len(started_at))
            return True
        return False

    def _open_if_exceeded(self, now: float) -> None:
        reason = self._rates_exceeded(now)
        if reason:
            self.breaker._transition(BreakerState.OPEN, reason)


class MetricsOnly(State):
    """Every call goes through and is measured; the rates are reported as events, never acted on."""

    value = BreakerState.METRICS_ONLY
    admits_all = True
    __slots__ = ()

    def record(self, outcome: int, now: float) -> None:
        window = self.window
        window.record(outcome, now)
        if outcome or window.failed or window.slow:
            self._rates_exceeded(now)


class Disabled(State):
    """Every call goes through, nothing is measured."""

    value = BreakerState.DISABLED
    admits_all = True
    __slots__ = ()

    def record(self, outcome: int, now: float) -> None:
        return None


class Open(State):
    """Every call is refused until the wait (with its backoff) is over; then the next call, or the timer with
    ``automatic_transition``, moves the breaker to HALF_OPEN."""

    value = BreakerState.OPEN
    __slots__ = ("opened_at", "open_until")

    @classmethod
    def window_for(cls, breaker: CircuitBreaker, previous: Window | None) -> Window:
        return previous if previous is not None else super().window_for(breaker, None)

    def __init__(self, breaker: CircuitBreaker, generation: int, window: Window) -> None:
        super().__init__(breaker, generation, window)
        self.opened_at = self.open_until = 0.0

    def enter(self, now: float) -> None:
        breaker = self.breaker
        breaker._consecutive_openings += 1
        self.opened_at = now
        self.open_until = now + breaker.config.wait_open_s(breaker._consecutive_openings)
        if breaker.config.automatic_transition:
            self._schedule(self.open_until - now)

    def wait_left_s(self, now: float) -> float:
        return max(0.0, self.open_until - now)

    def restore(self, now: float, wait_left_s: float) -> None:
        self.opened_at = now
        self.open_until = now + wait_left_s

    def poll(self, now: float) -> None:
        if self.breaker.config.automatic_transition and now >= self.open_until:
            self.breaker._transition(BreakerState.HALF_OPEN, "wait duration in OPEN elapsed")

    def acquire(self) -> State:
        breaker = self.breaker
        if breaker.config.clock() < self.open_until:
            raise self.reject()
        breaker._transition(BreakerState.HALF_OPEN, "wait duration in OPEN elapsed")
        current = breaker._state
        if current is self:
            raise self.reject()
        return current.acquire()


class ForcedOpen(State):
    """Every call is refused until someone moves the breaker by hand."""

    value = BreakerState.FORCED_OPEN
    __slots__ = ()

    @classmethod
    def window_for(cls, breaker: CircuitBreaker, previous: Window | None) -> Window:
        return previous if previous is not None else super().window_for(breaker, None)

    def acquire(self) -> State:
        raise self.reject()


class HalfOpen(State):
    """``permitted_calls_in_half_open`` trial calls go through; their outcomes close or reopen the breaker.
    ``max_wait_half_open_s`` (if set) reopens it when the trials take too long."""

    value = BreakerState.HALF_OPEN
    __slots__ = ("permits_left", "since")

    @classmethod
    def window_for(cls, breaker: CircuitBreaker, previous: Window | None) -> Window:
        """The trial calls only."""
        return CountWindow(breaker.config.permitted_calls_in_half_open)

    def __init__(self, breaker: CircuitBreaker, generation: int, window: Window) -> None:
        super().__init__(breaker, generation, window)
        self.permits_left = breaker.config.permitted_calls_in_half_open
        self.since = breaker.config.clock()

    def enter(self, now: float) -> None:
        self.since = now
        if self.breaker.config.max_wait_half_open_s > 0:
            self._schedule(self.breaker.config.max_wait_half_open_s)

    def poll(self, now: float) -> None:
        max_wait_s = self.breaker.config.max_wait_half_open_s
        if max_wait_s > 0 and now - self.since >= max_wait_s:
            self.breaker._transition(BreakerState.OPEN, "max wait in HALF_OPEN elapsed")

    def acquire(self) -> State:
        breaker = self.breaker
        self.poll(breaker.config.clock())
        current = breaker._state
        if current is not self:
            return current.acquire()
        if self.permits_left > 0:
            self.permits_left -= 1
            return self
        raise self.reject()

    def release(self) -> None:
        self.permits_left += 1

    @property
    def minimum_calls(self) -> int:
        return self.breaker.config.permitted_calls_in_half_open

    def record(self, outcome: int, now: float) -> None:
        self.window.record(outcome, now)
        reason = self._rates_exceeded(now)
        if reason:
            self.breaker._transition(BreakerState.OPEN, reason + " in HALF_OPEN")
        elif reason is not None:
            self.breaker._transition(BreakerState.CLOSED,
                                     f"{self.window.calls} trial calls below the thresholds")


#: Which class each state is; a breaker subclass may swap one (the mutants do).
STATES: dict[BreakerState, type[State]] = {cls.value: cls for cls in (
    Closed, Open, HalfOpen, Disabled, ForcedOpen, MetricsOnly)}
