"""A Python target built from plain callables observes the user's own breaker, whatever its library: the
real pybreaker, aiobreaker, purgatory, circuitbreaker and lab.resilience breakers, driven OPEN -> HALF_OPEN
-> CLOSED by a failing operation, become ``breaker`` events of the component they guard. No stack needed:
the operation is the user's code, here a function that fails on demand."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from lab.errors import UsageError
from lab.scenario import ClientProfile, RunContext, Scenario
from lab.scenario.history import History
from lab.scenario.python_target import load_target, python_target

pytestmark = pytest.mark.integration


class Down(Exception):
    pass


@dataclasses.dataclass
class Service:
    """The user's operation: fails while ``down``."""

    down: bool = False

    def query(self) -> str:
        if self.down:
            raise Down()
        return "ok"

    async def aquery(self) -> str:
        return self.query()


def _pybreaker(service):
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=0.2, name="db")
    return breaker, lambda: _sync(breaker.call, service.query)


def _aiobreaker(service):
    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(fail_max=2, timeout_duration=timedelta(seconds=0.2), name="db")
    return breaker, lambda: breaker.call_async(service.aquery)


def _purgatory(service):
    from purgatory import AsyncCircuitBreakerFactory

    factory = AsyncCircuitBreakerFactory(default_threshold=2, default_ttl=0.2)
    guarded = factory("db")(service.aquery)
    return factory, guarded


def _circuitbreaker(service):
    import circuitbreaker

    breaker = circuitbreaker.CircuitBreaker(failure_threshold=2, recovery_timeout=0.2, name="db")
    return breaker, lambda: _sync(breaker.call, service.query)


def _lab(service):
    from lab.resilience import CircuitBreaker

    config = dataclasses.replace(ClientProfile(window=2, minimum_calls=2, wait_open_s=0.2), in_flight=1).breaker(
        (Down,))
    breaker = CircuitBreaker("db", config)
    return breaker, lambda: breaker.call(service.aquery)


async def _sync(call, fn):
    return call(fn)


SCENARIO = Scenario(name="unit", description="", components=("pg",), faults=lambda ctx: [],
                    checks=lambda p: [])


@pytest.mark.parametrize("build", [_pybreaker, _aiobreaker, _purgatory, _circuitbreaker, _lab],
                         ids=["pybreaker", "aiobreaker", "purgatory", "circuitbreaker", "lab"])
async def test_the_users_breaker_cycle_becomes_breaker_events_of_its_component(build):
    service = Service()
    breaker, operation = build(service)
    target = python_target(operation, breakers={"pg": breaker}, expected_errors=[Down])
    history = History()
    (lane,) = await target.start(RunContext(None, SCENARIO, ClientProfile(), history))
    assert lane.covers == ("pg",) and lane.breakers == {"pg": "observed"} and lane.errors == ["Down"]
    try:
        service.down = True
        for _ in range(4):
            with pytest.raises(Exception):
                await lane.op(0)
            await asyncio.sleep(0.02)
        assert lane.state() == "OPEN"
        service.down = False
        await asyncio.sleep(0.3)
        for _ in range(3):  # trial calls: HALF_OPEN, then CLOSED
            try:
                await lane.op(0)
            except Exception:
                pass
            await asyncio.sleep(0.05)
    finally:
        await target.close()
    moves = [(e.get("from"), e.get("to")) for e in history.of("breaker", component="pg")]
    assert ("CLOSED", "OPEN") in moves, moves
    assert moves[-1][1] == "CLOSED", moves
    assert lane.state() == "CLOSED"
    if build is _lab:  # the lab's breaker also reports the outcomes its window counts
        assert lane.outcomes == ("pg",) and any(history.of("outcome", component="pg"))
    # each third-party breaker's OPEN carries its configured wait (0.2 s), which the HALF_OPEN check judges by
    waits = [e.get("wait_s") for e in history.of("breaker", component="pg") if e.get("to") == "OPEN"]
    assert waits and set(waits) == ({None} if build is _lab else {0.2}), waits


def test_a_breaker_of_an_unknown_library_is_refused_when_the_target_is_built():
    with pytest.raises(UsageError, match="cannot observe a breaker of type builtins.object"):
        python_target(Service().aquery, breakers={"pg": object()})


def test_a_breaker_declared_none_is_absent():
    target = python_target(Service().aquery, breakers={"pg": None})
    lane = asyncio.run(target.start(RunContext(None, SCENARIO, ClientProfile(), History())))[0]
    assert lane.breakers == {"pg": "absent"} and lane.state() == "NONE"


@pytest.mark.parametrize(("spec", "message"), [
    ("no_colon", "give it as module:attribute"),
    ("lab_no_such_module_xyz:target", "does not import"),
    ("lab.scenario:no_such_target", "has no attribute 'no_such_target'"),
    ("lab.scenario:ClientProfile", "not a Target"),
])
def test_a_bad_target_spec_names_what_is_wrong(spec, message):
    with pytest.raises(UsageError, match=message):
        load_target(spec)


def test_a_target_spec_may_name_a_factory():
    import sys
    import types

    module = types.ModuleType("lab_test_user_targets")
    module.make = lambda: python_target(Service().aquery, name="made")
    sys.modules[module.__name__] = module
    try:
        assert load_target("lab_test_user_targets:make").name == "made"
    finally:
        del sys.modules[module.__name__]
