"""CircuitBreaker with resilience4j's semantics, async first.

    breaker = CircuitBreaker("pg", BreakerConfig(failure_rate_threshold=50, sliding_window_size=20))
    rows = await breaker.call(conn.fetch, "SELECT 1")
    async with breaker:
        await producer.send(...)
    @breaker
    async def query(): ...

Guarantees:
* no failure or slow-call rate is computed before ``minimum_number_of_calls``;
  a rate at or above its threshold opens the breaker;
* HALF_OPEN hands out at most ``permitted_calls_in_half_open`` trial permits,
  rejects everything else with CallNotPermitted, and decides from the trial
  results; ``max_wait_half_open_s`` stops a trial that never ends from wedging it;
* an exception that is neither recorded nor ignored counts as a success; an
  ignored one is not counted and gives its half-open permit back;
* cancellation, KeyboardInterrupt and SystemExit are neither success nor
  failure and give the permit back;
* a call that started before a state change is not counted in the new state.

A breaker belongs to one thread (its event loop); it takes no locks.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
from typing import Any, Awaitable, Callable, NamedTuple, TypeVar

from ..errors import CallNotPermitted
from .config import BreakerConfig
from .events import BreakerEvent, BreakerState, Listener, Listeners
from .store import StateStore, StoredState
from .windows import FAILURE, SLOW_FAILURE, SLOW_SUCCESS, SUCCESS, CountWindow, Snapshot, TimeWindow

T = TypeVar("T")


class Permit(NamedTuple):
    generation: int
    half_open: bool
    started_at: float


_new_tuple = tuple.__new__
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
DISABLED, FORCED_OPEN, METRICS_ONLY = BreakerState.DISABLED, BreakerState.FORCED_OPEN, BreakerState.METRICS_ONLY
_NEITHER = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)


class CircuitBreaker:
    def __init__(self, name: str, config: BreakerConfig | None = None, store: StateStore | None = None) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.store = store
        self._clock = self.config.clock
        self._slow_s = self.config.slow_call_duration_s
        self.listeners = Listeners()
        self._success_listeners = self.listeners.by_kind["success"]  # the same list, kept current
        self._state = CLOSED
        self._closed = True  # state is CLOSED
        self._fast = self.config.sliding_window_type == "count"  # CLOSED with a count window
        self._generation = 0
        self._window = self._new_window()
        self._opened_at = 0.0
        self._open_until = 0.0
        self._half_open_since = 0.0
        self._permits_left = 0
        self._consecutive_openings = 0
        self.not_permitted_calls = 0
        self._timer: asyncio.TimerHandle | None = None
        self._entries: contextvars.ContextVar[list[tuple[float, int, bool]]] = contextvars.ContextVar(
            f"breaker-{name}-{id(self)}")
        if store is not None:
            self._restore(store.load(name))

    # -- windows -----------------------------------------------------------------

    def _new_window(self) -> CountWindow | TimeWindow:
        if self.config.sliding_window_type == "time":
            return TimeWindow(self.config.sliding_window_size)
        return CountWindow(self.config.sliding_window_size)

    # -- state -------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        self.poll()
        return self._state

    def poll(self) -> None:
        """Apply the transitions that time alone causes (OPEN -> HALF_OPEN, HALF_OPEN max wait)."""
        state = self._state
        if state is OPEN and self.config.automatic_transition and self._clock() >= self._open_until:
            self._transition(HALF_OPEN, "wait duration in OPEN elapsed")
        elif state is HALF_OPEN and self.config.max_wait_half_open_s > 0:
            if self._clock() - self._half_open_since >= self.config.max_wait_half_open_s:
                self._transition(OPEN, "max wait in HALF_OPEN elapsed")

    def _transition(self, to: BreakerState, reason: str) -> None:
        source = self._state
        if source is to:
            return
        now = self._clock()
        self._state = to
        self._closed = to is CLOSED
        self._fast = self._closed and self.config.sliding_window_type == "count"
        self._generation += 1
        self._cancel_timer()
        if to is CLOSED:
            self._window = self._new_window()
            self._consecutive_openings = 0
        elif to is OPEN:
            self._consecutive_openings += 1
            self._opened_at = now
            self._open_until = now + self.config.wait_open_s(self._consecutive_openings)
            if self.config.automatic_transition:
                self._schedule(self._open_until - now)
        elif to is HALF_OPEN:
            self._window = CountWindow(self.config.permitted_calls_in_half_open)
            self._permits_left = self.config.permitted_calls_in_half_open
            self._half_open_since = now
            if self.config.max_wait_half_open_s > 0:
                self._schedule(self.config.max_wait_half_open_s)
        elif to in (DISABLED, METRICS_ONLY):
            self._window = self._new_window()
        self._persist()
        self.listeners.emit(BreakerEvent("state_transition", self.name, now, from_state=source, to_state=to,
                                         reason=reason))

    def _schedule(self, delay_s: float) -> None:
        """A real timer when a loop runs and the clock is the real one; else poll() on use."""
        if self._clock is not time.monotonic:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, delay_s), self.poll)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- manual control ----------------------------------------------------------

    def transition_to_closed(self) -> None:
        self._transition(CLOSED, "manual")

    def transition_to_open(self) -> None:
        self._transition(OPEN, "manual")

    def transition_to_half_open(self) -> None:
        self._transition(HALF_OPEN, "manual")

    def transition_to_disabled(self) -> None:
        self._transition(DISABLED, "manual")

    def transition_to_forced_open(self) -> None:
        self._transition(FORCED_OPEN, "manual")

    def transition_to_metrics_only(self) -> None:
        self._transition(METRICS_ONLY, "manual")

    def reset(self) -> None:
        """Back to CLOSED with empty metrics (emits 'reset', and a transition if the state changes)."""
        self._transition(CLOSED, "reset")
        self._window = self._new_window()
        self._consecutive_openings = 0
        self.not_permitted_calls = 0
        self._generation += 1
        self._persist()
        self.listeners.emit(BreakerEvent("reset", self.name, self._clock()))

    # -- permission ----------------------------------------------------------------

    def _acquire(self) -> tuple[int, bool]:
        """(generation, took a half-open permit) or CallNotPermitted."""
        self.poll()
        state = self._state
        if state is CLOSED or state is DISABLED or state is METRICS_ONLY:
            return self._generation, False
        if state is OPEN and self._clock() >= self._open_until:
            self._transition(HALF_OPEN, "wait duration in OPEN elapsed")
            state = self._state
        if state is HALF_OPEN and self._permits_left > 0:
            self._permits_left -= 1
            return self._generation, True
        self.not_permitted_calls += 1
        if self.listeners.by_kind["not_permitted"]:
            self.listeners.emit(BreakerEvent("not_permitted", self.name, self._clock()))
        raise CallNotPermitted(self.name, state.value)

    def acquire_permission(self) -> Permit:
        """Permission for one call whose outcome the caller reports later with ``record_result``.

        Raises CallNotPermitted. For work that is not one awaitable (e.g. a send
        whose acknowledgement arrives by callback).
        """
        generation, permit = (self._generation, False) if self._closed else self._acquire()
        return _new_tuple(Permit, (generation, permit, self._clock()))  # Permit(...) without a Python frame

    def record_result(self, permit: Permit, error: BaseException | None = None) -> None:
        """Report the outcome of a call started with ``acquire_permission``."""
        duration = self._clock() - permit.started_at
        if error is None:
            self.on_success(duration, permit.generation)
        else:
            self.on_error(error, duration, permit.generation, permit.half_open)

    def closed_generation(self) -> int | None:
        """The generation, when the breaker is CLOSED (a call then needs no permit), else None.

        For callers that batch: a call started while CLOSED is counted like one
        with ``acquire_permission()`` (same generation, no half-open permit), and
        its success can be reported with ``record_successes``. Otherwise take a permit.
        """
        return self._generation if self._closed else None

    def record_successes(self, generation: int, started_at: "list[float]") -> None:
        """Report that calls of ``generation`` (see closed_generation), started at these
        times on the breaker's clock, all succeeded just now.

        The same as ``on_success(now - t, generation)`` for each, in order, but in one
        step when nothing could differ (still CLOSED in that generation, count window
        holding no failure or slow call, no success listener, no slow call among
        them): the batched path of a producer whose acknowledgements come by the hundred.
        """
        if not started_at:
            return
        now = self._clock()
        window = self._window
        if (self._fast and generation == self._generation and not self._success_listeners and not window.failed
                and not window.slow and min(started_at) > now - self._slow_s):
            window.record_successes(len(started_at))
            return
        for t in started_at:
            self.on_success(now - t, generation)

    # -- outcomes ------------------------------------------------------------------

    def _record(self, outcome: int, generation: int, duration_s: float, error: BaseException | None) -> None:
        now = self._clock()
        if generation == self._generation and self._state is not DISABLED:
            window = self._window
            window.record(outcome, now)
            if outcome or window.failed or window.slow or self._state is not CLOSED:
                self._evaluate(now)  # a success among successes cannot change a CLOSED breaker
        kind = "error" if outcome & 1 else "success"
        if self.listeners.by_kind[kind]:
            self.listeners.emit(BreakerEvent(kind, self.name, now, duration_s=duration_s, error=error))

    def _evaluate(self, now: float) -> None:
        state = self._state
        config = self.config
        if state is CLOSED or state is METRICS_ONLY:
            minimum = config.effective_minimum_calls
        elif state is HALF_OPEN:
            minimum = config.permitted_calls_in_half_open
        else:
            return
        window = self._window
        calls = window.calls if isinstance(window, CountWindow) else window.snapshot(now).calls
        if calls < minimum:
            return
        failure_rate = window.failed * 100.0 / calls
        slow_rate = window.slow * 100.0 / calls
        failing = failure_rate >= config.failure_rate_threshold
        slow = slow_rate >= config.slow_call_rate_threshold
        if failing and self.listeners.by_kind["failure_rate_exceeded"]:
            self.listeners.emit(BreakerEvent("failure_rate_exceeded", self.name, now, rate=failure_rate))
        if slow and self.listeners.by_kind["slow_call_rate_exceeded"]:
            self.listeners.emit(BreakerEvent("slow_call_rate_exceeded", self.name, now, rate=slow_rate))
        if state is METRICS_ONLY:
            return
        if failing or slow:
            reason = (f"failure rate {failure_rate:.1f}% >= {config.failure_rate_threshold:g}%" if failing
                      else f"slow call rate {slow_rate:.1f}% >= {config.slow_call_rate_threshold:g}%")
            self._transition(OPEN, reason + (" in HALF_OPEN" if state is HALF_OPEN else ""))
        elif state is HALF_OPEN:
            self._transition(CLOSED, f"{calls} trial calls below the thresholds")

    def on_success(self, duration_s: float, generation: int | None = None) -> None:
        self._record(SLOW_SUCCESS if duration_s >= self._slow_s else SUCCESS,
                     self._generation if generation is None else generation, duration_s, None)

    def on_error(self, error: BaseException, duration_s: float, generation: int | None = None,
                 permit: bool = True) -> None:
        """Classify ``error`` as resilience4j does and record it."""
        generation = self._generation if generation is None else generation
        if isinstance(error, _NEITHER):
            self._release(generation, permit)
            return
        config = self.config
        if config.ignore_exceptions and config.is_ignored(error):
            self._release(generation, permit)
            if self.listeners.by_kind["ignored_error"]:
                self.listeners.emit(BreakerEvent("ignored_error", self.name, self._clock(), duration_s=duration_s,
                                                 error=error))
            return
        slow = duration_s >= self._slow_s
        if config.is_recorded(error):
            self._record(SLOW_FAILURE if slow else FAILURE, generation, duration_s, error)
        else:
            self._record(SLOW_SUCCESS if slow else SUCCESS, generation, duration_s, None)

    def _release(self, generation: int, permit: bool) -> None:
        if permit and generation == self._generation and self._state is HALF_OPEN:
            self._permits_left += 1

    # -- guarding calls ------------------------------------------------------------

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` under the breaker."""
        clock = self._clock
        if self._closed:
            generation, permit = self._generation, False
        else:
            generation, permit = self._acquire()
        start = clock()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(exc, clock() - start, generation, permit)
            raise
        if (clock() - start < self._slow_s and self._fast and generation == self._generation
                and not self._success_listeners):
            # The hot path (CLOSED, count window, a quick success, nobody listening): the
            # ring update of CountWindow.record for SUCCESS, inlined.
            window = self._window
            ring = window.ring
            pos = window.pos
            old = ring[pos]
            ring[pos] = SUCCESS
            window.pos = pos + 1 if pos + 1 < window.size else 0
            if old:
                if old < 0:
                    window.calls += 1
                else:
                    window.failed -= old & 1
                    window.slow -= old >> 1
                    window.slow_failed -= old == SLOW_FAILURE
            if window.failed or window.slow:
                self._evaluate(start)
        else:
            duration = clock() - start
            self._record(SLOW_SUCCESS if duration >= self._slow_s else SUCCESS, generation, duration, None)
        return result

    def call_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a synchronous ``fn`` under the breaker."""
        generation, permit = (self._generation, False) if self._closed else self._acquire()
        start = self._clock()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(exc, self._clock() - start, generation, permit)
            raise
        self.on_success(self._clock() - start, generation)
        return result

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator for async and sync functions."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def guarded(*args: Any, **kwargs: Any) -> Any:
                return await self.call(fn, *args, **kwargs)
        else:
            @functools.wraps(fn)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                return self.call_sync(fn, *args, **kwargs)
        return guarded

    async def __aenter__(self) -> "CircuitBreaker":
        generation, permit = (self._generation, False) if self._closed else self._acquire()
        stack = self._entries.get(None)
        if stack is None:
            stack = []
            self._entries.set(stack)
        stack.append((self._clock(), generation, permit))
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        start, generation, permit = self._entries.get().pop()
        duration = self._clock() - start
        if exc is None:
            self.on_success(duration, generation)
        else:
            self.on_error(exc, duration, generation, permit)
        return False

    # -- metrics -------------------------------------------------------------------

    def add_listener(self, listener: Listener, kinds: tuple[str, ...] | None = None) -> None:
        self.listeners.add(listener, kinds)

    def snapshot(self) -> Snapshot:
        return self._window.snapshot(self._clock())

    @property
    def failure_rate(self) -> float:
        return self.snapshot().failure_rate(self._minimum())

    @property
    def slow_call_rate(self) -> float:
        return self.snapshot().slow_call_rate(self._minimum())

    def _minimum(self) -> int:
        if self._state is HALF_OPEN:
            return self.config.permitted_calls_in_half_open
        return self.config.effective_minimum_calls

    def metrics(self) -> dict[str, float]:
        snap = self.snapshot()
        return {
            "failure_rate": snap.failure_rate(self._minimum()),
            "slow_call_rate": snap.slow_call_rate(self._minimum()),
            "buffered_calls": snap.calls,
            "failed_calls": snap.failed,
            "successful_calls": snap.successful,
            "slow_calls": snap.slow,
            "slow_failed_calls": snap.slow_failed,
            "not_permitted_calls": self.not_permitted_calls,
        }

    def prometheus(self) -> str:
        """resilience4j-micrometer's metric names, Prometheus text format."""
        name = self.name.replace("\\", "\\\\").replace('"', '\\"')
        m = self.metrics()
        current = self.state
        lines = ["# TYPE resilience4j_circuitbreaker_state gauge"]
        lines += [f'resilience4j_circuitbreaker_state{{name="{name}",state="{s.value.lower()}"}} '
                  f"{int(s is current)}" for s in BreakerState]
        lines += ["# TYPE resilience4j_circuitbreaker_buffered_calls gauge"]
        lines += [f'resilience4j_circuitbreaker_buffered_calls{{name="{name}",kind="{kind}"}} {m[key]}'
                  for kind, key in (("successful", "successful_calls"), ("failed", "failed_calls"))]
        lines += ["# TYPE resilience4j_circuitbreaker_slow_calls gauge",
                  f'resilience4j_circuitbreaker_slow_calls{{name="{name}",kind="successful"}} '
                  f"{m['slow_calls'] - m['slow_failed_calls']}",
                  f'resilience4j_circuitbreaker_slow_calls{{name="{name}",kind="failed"}} {m["slow_failed_calls"]}',
                  "# TYPE resilience4j_circuitbreaker_not_permitted_calls_total counter",
                  f'resilience4j_circuitbreaker_not_permitted_calls_total{{name="{name}"}} {m["not_permitted_calls"]}',
                  "# TYPE resilience4j_circuitbreaker_failure_rate gauge",
                  f'resilience4j_circuitbreaker_failure_rate{{name="{name}"}} {m["failure_rate"]}',
                  "# TYPE resilience4j_circuitbreaker_slow_call_rate gauge",
                  f'resilience4j_circuitbreaker_slow_call_rate{{name="{name}"}} {m["slow_call_rate"]}']
        return "\n".join(lines) + "\n"

    # -- persistence -----------------------------------------------------------------

    def _persist(self) -> None:
        if self.store is None:
            return
        remaining = max(0.0, self._open_until - self._clock()) if self._state is OPEN else 0.0
        self.store.save(self.name, StoredState(self._state.value, time.time() + remaining,
                                               self._consecutive_openings))

    def _restore(self, stored: StoredState | None) -> None:
        if stored is None:
            return
        state = BreakerState(stored.state)
        self._consecutive_openings = stored.consecutive_openings
        if state is OPEN:
            self._state, self._closed, self._fast = OPEN, False, False
            self._opened_at = self._clock()
            self._open_until = self._clock() + max(0.0, stored.open_until_wall - time.time())
        elif state is HALF_OPEN:
            self._state, self._closed, self._fast = HALF_OPEN, False, False
            self._window = CountWindow(self.config.permitted_calls_in_half_open)
            self._permits_left = self.config.permitted_calls_in_half_open
            self._half_open_since = self._clock()
        elif state is not CLOSED:
            self._state, self._closed, self._fast = state, False, False
