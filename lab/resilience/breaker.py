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

The states are objects (states.py): the breaker holds one and a transition
swaps it; ``call`` is the current state's own guarded call.

A breaker belongs to one thread (its event loop); it takes no locks.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import operator
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, NamedTuple, TypeVar

from .config import BreakerConfig
from .events import BreakerEvent, BreakerState, Listener, Listeners
from .states import STATES, State
from .store import StateStore, StoredState
from .windows import FAILURE, SLOW_FAILURE, SLOW_SUCCESS, SUCCESS, Snapshot

T = TypeVar("T")


class Permit(NamedTuple):
    generation: int  # the number of the state that granted the call
    half_open: bool
    started_at: float


_new_tuple = tuple.__new__
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
_NEITHER = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)


class CircuitBreaker:
    #: The class of each state; a subclass may replace one (see lab/scenario/mutants.py).
    states: dict[BreakerState, type[State]] = STATES

    def __init__(self, name: str, config: BreakerConfig | None = None, store: StateStore | None = None) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.store = store
        self._clock = self.config.clock
        self._slow_s = self.config.slow_call_duration_s
        self.listeners = Listeners()
        self._generations = 0
        self._consecutive_openings = 0
        self.not_permitted_calls = 0
        self._state: State = self._new_state(CLOSED, None)
        self._entries: contextvars.ContextVar[list[tuple[float, State]]] = contextvars.ContextVar(
            f"breaker-{name}-{id(self)}")
        if store is not None:
            self._restore(store.load(name))

    # -- state -------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        self.poll()
        return self._state.value

    def poll(self) -> None:
        """Apply the transitions that time alone causes (OPEN -> HALF_OPEN, HALF_OPEN max wait)."""
        self._state.poll(self._clock())

    def _new_state(self, to: BreakerState, previous: State | None) -> State:
        cls = self.states[to]
        self._generations += 1
        return cls(self, self._generations, cls.window_for(self, previous.window if previous else None))

    def _transition(self, to: BreakerState, reason: str) -> None:
        source = self._state
        if source.value is to:
            return
        now = self._clock()
        source.exit()
        self._state = state = self._new_state(to, source)
        state.enter(now)
        self._persist()
        self.listeners.emit(BreakerEvent("state_transition", self.name, now, from_state=source.value, to_state=to,
                                         reason=reason))

    # -- manual control ----------------------------------------------------------

    def transition_to_closed(self) -> None:
        self._transition(CLOSED, "manual")

    def transition_to_open(self) -> None:
        self._transition(OPEN, "manual")

    def transition_to_half_open(self) -> None:
        self._transition(HALF_OPEN, "manual")

    def transition_to_disabled(self) -> None:
        self._transition(BreakerState.DISABLED, "manual")

    def transition_to_forced_open(self) -> None:
        self._transition(BreakerState.FORCED_OPEN, "manual")

    def transition_to_metrics_only(self) -> None:
        self._transition(BreakerState.METRICS_ONLY, "manual")

    def reset(self) -> None:
        """Back to CLOSED with empty metrics (emits 'reset', and a transition if the state changes)."""
        self._transition(CLOSED, "reset")
        self._state.exit()
        self._state = self._new_state(CLOSED, None)  # a fresh window; calls started before are not counted
        self._consecutive_openings = 0
        self.not_permitted_calls = 0
        self._persist()
        self.listeners.emit(BreakerEvent("reset", self.name, self._clock()))

    # -- permission ----------------------------------------------------------------

    def acquire_permission(self) -> Permit:
        """Permission for one call whose outcome the caller reports later with ``record_result``.

        Raises CallNotPermitted. For work that is not one awaitable (e.g. a send
        whose acknowledgement arrives by callback).
        """
        state = self._state
        if not state.admits_all:
            state = state.acquire()
        return _new_tuple(Permit, (state.generation, state.value is HALF_OPEN, self._clock()))  # no Python frame

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
        state = self._state
        return state.generation if state.value is CLOSED else None

    def record_successes(self, generation: int, started_at: list[float]) -> None:
        """Report that calls of ``generation`` (see closed_generation), started at these
        times on the breaker's clock, all succeeded just now.

        The same as ``on_success(now - t, generation)`` for each, in order, but in one
        step where the state can take them so (see ``State.record_successes``): the
        batched path of a producer whose acknowledgements come by the hundred.
        """
        if not started_at:
            return
        now = self._clock()
        state = self._state
        if generation == state.generation and state.record_successes(now, started_at):
            return
        for t in started_at:
            self.on_success(now - t, generation)

    # -- outcomes ------------------------------------------------------------------

    def _record(self, outcome: int, generation: int | None, duration_s: float, error: BaseException | None) -> None:
        now = self._clock()
        state = self._state
        if generation is None or generation == state.generation:
            state.record(outcome, now)
        kind = "error" if outcome & 1 else "success"
        if self.listeners.by_kind[kind]:
            self.listeners.emit(BreakerEvent(kind, self.name, now, duration_s=duration_s, error=error))

    def on_success(self, duration_s: float, generation: int | None = None) -> None:
        """Record a success of ``duration_s``, counted if the state numbered ``generation`` (default: the current
        one) is still current."""
        self._record(SLOW_SUCCESS if duration_s >= self._slow_s else SUCCESS, generation, duration_s, None)

    def on_error(self, error: BaseException, duration_s: float, generation: int | None = None,
                 permit: bool = True) -> None:
        """Classify ``error`` as resilience4j does and record it."""
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

    def _release(self, generation: int | None, permit: bool) -> None:
        state = self._state
        if permit and (generation is None or generation == state.generation):
            state.release()

    # -- guarding calls ------------------------------------------------------------

    if TYPE_CHECKING:
        async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
            """Await ``fn(*args, **kwargs)`` under the breaker."""
    else:
        #: ``await breaker.call(fn, *args, **kwargs)``: the current state's own ``call`` (states.py), looked up
        #: in C: a transition swaps the state object, and with it what a guarded call does. A call created in
        #: one state and started in another is handed on to the newer one.
        call = property(operator.attrgetter("_state.call"))

    def call_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a synchronous ``fn`` under the breaker."""
        state = self._state
        if not state.admits_all:
            state = state.acquire()
        start = self._clock()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(exc, self._clock() - start, state.generation)
            raise
        self.on_success(self._clock() - start, state.generation)
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
        state = self._state
        if not state.admits_all:
            state = state.acquire()
        stack = self._entries.get(None)
        if stack is None:
            stack = []
            self._entries.set(stack)
        stack.append((self._clock(), state))
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        start, state = self._entries.get().pop()
        duration = self._clock() - start
        if exc is None:
            self.on_success(duration, state.generation)
        else:
            self.on_error(exc, duration, state.generation)
        return False

    # -- metrics -------------------------------------------------------------------

    def add_listener(self, listener: Listener, kinds: tuple[str, ...] | None = None) -> None:
        self.listeners.add(listener, kinds)

    def snapshot(self) -> Snapshot:
        return self._state.window.snapshot(self._clock())

    @property
    def failure_rate(self) -> float:
        return self.snapshot().failure_rate(self._minimum())

    @property
    def slow_call_rate(self) -> float:
        return self.snapshot().slow_call_rate(self._minimum())

    def _minimum(self) -> int:
        return self._state.minimum_calls

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
        state = self._state
        self.store.save(self.name, StoredState(state.value.value, time.time() + state.wait_left_s(self._clock()),
                                               self._consecutive_openings))

    def _restore(self, stored: StoredState | None) -> None:
        """Take up the stored state without a transition: no events, no timers, no new opening counted."""
        if stored is None:
            return
        self._consecutive_openings = stored.consecutive_openings
        state = self._new_state(BreakerState(stored.state), None)
        state.restore(self._clock(), max(0.0, stored.open_until_wall - time.time()))
        self._state = state
