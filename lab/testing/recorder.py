"""A test's own history: the calls it makes, the breakers it observes, the phases its faults mark.

The same ``History`` the scenarios record, so the same checks judge it. A test has one lane of calls,
"service", covering the components it names; ``Chaos`` marks the fault and heal phases when a fault
is entered and left.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, TypeVar

from ..scenario.history import FAIL, OK, UNKNOWN, History
from ..scenario.python_target import ObservedBreaker
from ..scenario.target import declare

T = TypeVar("T")
LANE = "service"


class _Declared:
    def __init__(self, name: str, covers: tuple[str, ...], breakers: dict[str, str], outcomes: tuple[str, ...],
                 errors: list[str] | None) -> None:
        self.name, self.covers, self.breakers, self.outcomes, self.errors = name, covers, breakers, outcomes, errors


class Recorder:
    """``await recorder.call(fn)`` records one call (its outcome, latency, error class) and returns its result or
    raises its error; ``recorder.observe("pg", breaker)`` records the breaker's transitions."""

    def __init__(self, covers: Iterable[str] = ("pg", "kafka"), expected_errors: Iterable[str | type] | None = None,
                 name: str = "pytest") -> None:
        self.history = History()
        self.name = name
        self.covers = tuple(covers)
        self.errors = (None if expected_errors is None else
                       sorted(e if isinstance(e, str) else e.__name__ for e in expected_errors))
        self._observed: list[ObservedBreaker] = []
        self._absent: list[str] = []
        self._declare()

    def _declare(self) -> None:
        self.history.events = [e for e in self.history.events if e.kind != "target"]
        lane = _Declared(LANE, self.covers, {**{c: "absent" for c in self._absent},
                                             **{b.component: "observed" for b in self._observed}},
                         tuple(b.component for b in self._observed if b.reports_outcomes), self.errors)
        declare(self.history, self, [lane])

    def observe(self, component: str, breaker: Any) -> None:
        """Record ``breaker``'s transitions (pybreaker, aiobreaker, purgatory, circuitbreaker, lab.resilience) as
        ``component``'s; circuitbreaker is polled, so call this inside the test's event loop."""
        observed = ObservedBreaker(component, breaker)
        observed.attach(self.history)
        self._observed.append(observed)
        self._declare()

    def no_breaker(self, component: str) -> None:
        """Declare that the service has no breaker on ``component``: the breaker assertions then fail (rather
        than being unknown) for want of transitions."""
        self._absent.append(component)
        self._declare()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        started = self.history.now()
        try:
            result = await fn()
        except BaseException as err:
            ended = self.history.now()
            cancelled = not isinstance(err, Exception)
            self.history.add("op", UNKNOWN if cancelled else FAIL, t=ended, lane=LANE, started=started,
                             ended=ended, latency_s=ended - started,
                             error_class="Cancelled" if cancelled else type(err).__name__, error=str(err)[:200])
            raise
        ended = self.history.now()
        self.history.add("op", OK, t=ended, lane=LANE, started=started, ended=ended, latency_s=ended - started)
        return result

    def phase(self, name: str, edge: str) -> None:
        self.history.add("phase", name=name, edge=edge)

    def close(self) -> None:
        for observed in self._observed:
            observed.detach()
