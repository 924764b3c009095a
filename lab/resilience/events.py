"""Breaker events and their delivery to listeners. A failing listener never breaks a call."""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import Callable

log = logging.getLogger("lab.resilience")


class BreakerState(enum.Enum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    DISABLED = "DISABLED"
    FORCED_OPEN = "FORCED_OPEN"
    METRICS_ONLY = "METRICS_ONLY"


KINDS = ("success", "error", "ignored_error", "not_permitted", "state_transition", "reset",
         "failure_rate_exceeded", "slow_call_rate_exceeded")


@dataclasses.dataclass(frozen=True)
class BreakerEvent:
    kind: str
    breaker: str
    t: float  # the breaker's clock
    duration_s: float | None = None
    error: BaseException | None = None
    from_state: BreakerState | None = None
    to_state: BreakerState | None = None
    reason: str = ""
    rate: float | None = None


Listener = Callable[[BreakerEvent], object]


class Listeners:
    """Listeners by event kind; ``any(kind)`` is the cheap check the hot path makes."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[Listener]] = {kind: [] for kind in KINDS}

    def add(self, listener: Listener, kinds: tuple[str, ...] | None = None) -> None:
        for kind in kinds or KINDS:
            if kind not in self.by_kind:
                raise ValueError(f"unknown event kind {kind!r}: choose from {', '.join(KINDS)}")
            self.by_kind[kind].append(listener)

    def emit(self, event: BreakerEvent) -> None:
        for listener in self.by_kind[event.kind]:
            try:
                listener(event)
            except Exception:  # a listener's bug is logged, never raised into the guarded call
                log.exception("breaker %s: listener %r failed on %s", event.breaker, listener, event.kind)
