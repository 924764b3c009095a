"""Observe users' breakers (pybreaker, aiobreaker, purgatory) and emit our transition events.

The lab checks breakers from a recorded history of ``BreakerEvent``s; these
adapters put third-party breakers into that history with the same event kind
("state_transition") and the same states, so one set of checks serves all.
Each ``observe_*`` attaches to the real library's own listener mechanism and
returns what it attached, so it can be detached.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .events import BreakerEvent, BreakerState

Sink = Callable[[BreakerEvent], object]

_NAMES = {
    "closed": BreakerState.CLOSED, "open": BreakerState.OPEN, "opened": BreakerState.OPEN,
    "half-open": BreakerState.HALF_OPEN, "half_open": BreakerState.HALF_OPEN, "half-opened": BreakerState.HALF_OPEN,
}


def to_state(name: str | None) -> BreakerState | None:
    if name is None:
        return None
    return _NAMES.get(name.lower())


def _emit(sink: Sink, breaker: str, source: str | None, target: str | None, clock: Callable[[], float],
          library: str) -> None:
    to = to_state(target)
    if to is None:
        return
    sink(BreakerEvent("state_transition", breaker, clock(), from_state=to_state(source), to_state=to,
                      reason=f"observed on {library}"))


def observe_pybreaker(breaker: Any, sink: Sink, clock: Callable[[], float] = time.monotonic) -> Any:
    import pybreaker

    class _Listener(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            _emit(sink, cb.name or "pybreaker", getattr(old_state, "name", None), new_state.name, clock,
                  "pybreaker")

    listener = _Listener()
    breaker.add_listener(listener)
    return listener


def observe_aiobreaker(breaker: Any, sink: Sink, clock: Callable[[], float] = time.monotonic) -> Any:
    import aiobreaker

    class _Listener(aiobreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old: Any, new: Any) -> None:
            source = old.state.name if old is not None else None
            _emit(sink, cb.name or "aiobreaker", source, new.state.name, clock, "aiobreaker")

    listener = _Listener()
    breaker.add_listener(listener)
    return listener


def observe_purgatory(factory: Any, sink: Sink, clock: Callable[[], float] = time.monotonic) -> Callable[..., None]:
    """purgatory reports the new state only; the previous one is tracked per circuit here."""
    previous: dict[str, str] = {}

    def hook(circuit: str, event_name: str, event: Any) -> None:
        if event_name == "circuit_breaker_created":
            previous[circuit] = "closed"
        if event_name != "state_changed":
            return
        source = previous.get(circuit)
        previous[circuit] = event.state
        if source != event.state:
            _emit(sink, circuit, source, event.state, clock, "purgatory")

    factory.add_listener(hook)
    return hook


def configured_wait_s(library: str, breaker: Any) -> float | None:
    """How long ``breaker`` (of ``library``) stays OPEN before it lets a trial call through, as configured, or
    None where the library does not say: the check of the OPEN -> HALF_OPEN wait judges a user's breaker against
    its own setting, not the lab's profile. purgatory: the factory's ``default_ttl`` (a circuit given its own
    ttl is not seen); lab.resilience: None (its wait grows with consecutive openings; the profile sets it)."""
    raw: Any = None
    if library == "aiobreaker":
        raw = breaker.timeout_duration.total_seconds()
    elif library == "pybreaker":
        raw = breaker.reset_timeout
    elif library == "purgatory":
        raw = breaker.default_ttl
    elif library == "circuitbreaker":
        raw = getattr(breaker, "_recovery_timeout", None)
    return float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
