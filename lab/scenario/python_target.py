"""The user's own Python code as a Target: built from plain callables, or any object that is a Target.

    # mypkg/chaos.py
    from lab.scenario.python_target import python_target
    target = python_target(place_order, breakers={"pg": db_breaker}, expected_errors=[ServiceUnavailable],
                           probes={"pg.pool": pool_is_whole}, on_start=connect, on_close=disconnect)

    python -m lab run network_partition --target mypkg.chaos:target

``operation`` is one async call of the service (one order placed, one message handled); the workload
calls it through every phase as one lane that exercises every component the scenario names (or
``covers``). ``breakers`` maps a component to the user's breaker object, observed through the
adapter for its library: pybreaker, aiobreaker, purgatory (its ``CircuitBreakerFactory``),
circuitbreaker (polled: it has no listeners) or ``lab.resilience.CircuitBreaker`` (whose own outcomes are
recorded too); ``None`` says the service has no breaker there (the breaker checks then fail).
``expected_errors`` are the error classes its calls may raise. ``probes`` maps a probe name the
scenarios' checks read ("pg.pool", "kafka.readback", ...) to an async callable returning ``(ok,
evidence)`` after the recovery; "<component>.latency" is measured here. ``statements`` maps a
component to a regular expression matching the service's own statements (``{"pg": r"UPDATE stock"}``):
the protocol-aware faults (pg_admin_shutdown, pg_serialization_failures) hit those, not the lab
workload's (named none, they hit nothing of the service's: their checks are UNKNOWN).
``on_start(settings)`` gets the lab's ``Settings`` (``settings.pg_dsn``, ``settings.kafka_bootstrap``:
the proxied addresses).
What the target does not give is declared not told, so the checks that need it are UNKNOWN with that
reason, never a pass.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from ..errors import UsageError
from ..resilience import BreakerEvent
from ..resilience.adapters import (configured_wait_s, observe_aiobreaker, observe_purgatory, observe_pybreaker,
                                  to_state)
from .evidence import ABSENT, OBSERVED
from .history import FAIL, OK, History
from .target import Lane, RunContext, Target, checked_statements

Operation = Callable[[], Awaitable[Any]]
Probe = Callable[[], Awaitable[tuple[bool, str]]]
POLL_S = 0.01  # how often a breaker without listeners (circuitbreaker) is read
LATENCY_SAMPLES = 50


def _library(breaker: Any) -> str:
    root = type(breaker).__module__.split(".")[0]
    if root == "lab":
        return "lab"
    if root in ("pybreaker", "aiobreaker", "purgatory", "circuitbreaker"):
        return root
    raise UsageError(f"cannot observe a breaker of type {type(breaker).__module__}.{type(breaker).__qualname__}: "
                     f"the adapters know pybreaker, aiobreaker, purgatory, circuitbreaker and lab.resilience")


class ObservedBreaker:
    """One user breaker, attached to the history: its transitions (and, for the lab's own, its outcomes) become
    events; ``state`` is the last state it was seen to enter."""

    def __init__(self, component: str, breaker: Any) -> None:
        self.component, self.breaker = component, breaker
        self.history = History()  # replaced by each run's
        self.library = _library(breaker)
        self.wait_s = configured_wait_s(self.library, breaker)
        self._attached = False
        self.state = "CLOSED"
        self._poller: asyncio.Task[None] | None = None

    @property
    def reports_outcomes(self) -> bool:
        return self.library == "lab"

    def _transition(self, event: BreakerEvent) -> None:
        if event.to_state is None:
            return
        self.state = event.to_state.value
        # an OPEN carries the breaker's own configured wait, which the HALF_OPEN check judges it by
        wait = {"wait_s": self.wait_s} if self.wait_s is not None and event.to_state.value == "OPEN" else {}
        self.history.add("breaker", OK, None, component=self.component, breaker=event.breaker,
                         **{"from": event.from_state.value if event.from_state else None},
                         to=event.to_state.value, reason=event.reason, **wait)

    def _outcome(self, event: BreakerEvent) -> None:
        self.history.add("outcome", FAIL if event.kind == "error" else OK, component=self.component,
                         duration_s=event.duration_s, error_class=type(event.error).__name__ if event.error else None)

    def attach(self, history: History) -> None:
        """Record into ``history`` from now on. The library's listener is added once, at the first run (the
        breaker outlives runs); the poller lives for one run."""
        self.history, self.state = history, "CLOSED"
        if self.library == "circuitbreaker":
            self._poller = asyncio.ensure_future(self._poll())
        if self._attached:
            return
        self._attached = True
        if self.library == "lab":
            self.breaker.add_listener(self._transition, ("state_transition",))
            self.breaker.add_listener(self._outcome, ("success", "error"))
        elif self.library == "pybreaker":
            observe_pybreaker(self.breaker, self._transition)
        elif self.library == "aiobreaker":
            observe_aiobreaker(self.breaker, self._transition)
        elif self.library == "purgatory":
            observe_purgatory(self.breaker, self._transition)

    async def _poll(self) -> None:
        """circuitbreaker has no listener API: its ``state`` is read every POLL_S (a transition is seen up to
        POLL_S late; one that reverts within POLL_S is missed)."""
        seen = to_state(str(self.breaker.state))
        while True:
            await asyncio.sleep(POLL_S)
            now = to_state(str(self.breaker.state))
            if now is not None and now is not seen:
                self._transition(BreakerEvent("state_transition", getattr(self.breaker, "name", "circuitbreaker")
                                              or "circuitbreaker", time.monotonic(), from_state=seen, to_state=now,
                                              reason="observed on circuitbreaker (polled)"))
                seen = now

    def detach(self) -> None:
        if self._poller is not None:
            self._poller.cancel()


class _OperationLane:
    def __init__(self, name: str, operation: Operation, covers: tuple[str, ...], observed: list[ObservedBreaker],
                 errors: list[str] | None, absent: tuple[str, ...]) -> None:
        self.name, self.operation, self.covers, self.errors = name, operation, covers, errors
        self.observed = observed
        self.breakers = {**{component: ABSENT for component in absent}, **{b.component: OBSERVED for b in observed}}
        self.outcomes = tuple(b.component for b in observed if b.reports_outcomes)

    async def op(self, sequence: int) -> None:
        await self.operation()

    def state(self) -> str:
        states = [b.state for b in self.observed]
        return next((s for s in ("OPEN", "HALF_OPEN") if s in states), "CLOSED" if states else "NONE")


class PythonTarget:
    """A Target built from plain callables (see the module docstring). Reusable: each ``start`` begins afresh."""

    def __init__(self, operation: Operation, *, name: str = "python target", covers: Iterable[str] | None = None,
                 breakers: Mapping[str, Any] | None = None, expected_errors: Iterable[str | type] | None = None,
                 probes: Mapping[str, Probe] | None = None, statements: Mapping[str, str] | None = None,
                 on_start: Callable[[Any], Awaitable[Any]] | None = None,
                 on_close: Callable[[], Awaitable[Any]] | None = None) -> None:
        if not callable(operation):
            raise UsageError(f"a python target's operation must be an async callable, not {operation!r}")
        self.name, self.operation = name, operation
        self.covers = tuple(covers) if covers is not None else None
        # an unknown breaker type is refused here, not mid-run
        self._observed = [ObservedBreaker(component, breaker) for component, breaker in (breakers or {}).items()
                          if breaker is not None]
        self._absent = tuple(component for component, breaker in (breakers or {}).items() if breaker is None)
        self.expected_errors = (None if expected_errors is None else
                                sorted(e if isinstance(e, str) else e.__name__ for e in expected_errors))
        self.probes_by_name = dict(probes or {})
        self.statements = checked_statements(statements, f"python target {name!r}")
        self.on_start, self.on_close = on_start, on_close
        self._lane: _OperationLane | None = None
        self._history: History | None = None

    async def start(self, run: RunContext) -> Sequence[Lane]:
        self._history = run.history
        if self.on_start is not None:
            await self.on_start(run.settings)
        for observed in self._observed:
            observed.attach(run.history)
        covers = self.covers if self.covers is not None else tuple(run.scenario.components)
        self._lane = _OperationLane("service", self.operation, covers, self._observed, self.expected_errors,
                                    self._absent)
        return [self._lane]

    async def probes(self, baseline_p99_s: Mapping[str, float | None]) -> None:
        history, lane = self._history, self._lane
        assert history is not None and lane is not None
        for name, probe in self.probes_by_name.items():
            try:
                ok, evidence = await asyncio.wait_for(probe(), 10)
            except Exception as err:
                ok, evidence = False, f"probe failed: {type(err).__name__}: {err}"
            history.add("probe", OK if ok else FAIL, name=name, evidence=evidence)
        await self._latency_probe(history, lane, baseline_p99_s.get(lane.name))

    async def _latency_probe(self, history: History, lane: _OperationLane, baseline_p99_s: float | None) -> None:
        """Sequential calls after the recovery, their p99 against the baseline's (bound 5x or 20 ms): recorded
        for each component the lane covers."""
        if not baseline_p99_s:
            return
        latencies: list[float] = []
        try:
            for _ in range(LATENCY_SAMPLES):
                started = time.monotonic()
                await asyncio.wait_for(self.operation(), 5)
                latencies.append(time.monotonic() - started)
        except Exception as err:
            status, evidence = FAIL, (f"call {len(latencies) + 1} of {LATENCY_SAMPLES} failed after recovery: "
                                      f"{type(err).__name__}: {err}")
        else:
            latencies.sort()
            p99 = latencies[int(0.99 * (len(latencies) - 1))]
            bound = max(5 * baseline_p99_s, 0.02)
            status = OK if p99 <= bound else FAIL
            evidence = (f"p99 {p99 * 1000:.1f} ms of {len(latencies)} calls after recovery vs baseline "
                        f"{baseline_p99_s * 1000:.1f} ms (bound 5x or 20 ms)")
        for component in lane.covers:
            history.add("probe", status, name=f"{component}.latency", evidence=evidence)

    async def close(self) -> None:
        for observed in self._observed:
            observed.detach()
        if self.on_close is not None:
            await self.on_close()


def python_target(operation: Operation, **options: Any) -> PythonTarget:
    """A Target from plain callables: ``python_target(operation, breakers=..., expected_errors=...,
    probes=..., statements=..., covers=..., on_start=..., on_close=..., name=...)``."""
    return PythonTarget(operation, **options)


def load_target(spec: str) -> Target:
    """``module:attribute`` -> the Target it names: an object with start/probes/close, or a callable with no
    arguments that returns one."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--target {spec!r}: give it as module:attribute (e.g. mypkg.chaos:target)")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise UsageError(f"--target {spec!r}: module {module_name!r} does not import: "
                         f"{type(err).__name__}: {err}") from err
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise UsageError(f"--target {spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
    if not _is_target(found) and callable(found) and not inspect.iscoroutinefunction(found):
        found = found()
    if not _is_target(found):
        raise UsageError(f"--target {spec!r} is a {type(found).__name__}, not a Target (it needs a name and async "
                         f"start, probes and close; lab.scenario.python_target.python_target builds one from an "
                         f"async operation)")
    target: Target = found
    return target


def _is_target(value: Any) -> bool:
    return (isinstance(getattr(value, "name", None), str)
            and all(inspect.iscoroutinefunction(getattr(value, m, None)) for m in ("start", "probes", "close")))


def target_factory(spec: str | None, negative: bool, mutant: Any) -> Callable[[], Target]:
    """What ``lab run`` runs each scenario against: a fresh lab target per scenario, or the user's."""
    from .targets import LabClients, NegativeControl

    if spec is None:
        return NegativeControl if negative else (lambda: LabClients(mutant))
    if spec.startswith(("http://", "https://")):
        from .http_target import http_target

        target: Target = http_target(spec)
    elif spec.endswith(".toml"):
        from pathlib import Path

        from .http_target_file import load_target_file

        target = load_target_file(Path(spec))
    else:
        target = load_target(spec)
    return lambda: target
