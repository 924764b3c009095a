"""The breaker against a small reference model of resilience4j's state machine (Hypothesis, stateful)."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lab.errors import CallNotPermitted
from lab.resilience import BreakerConfig, BreakerState, CircuitBreaker

from ..resilience_helpers import Boom, FakeClock

pytestmark = pytest.mark.property

WINDOW, MINIMUM, FAILURE_PCT, SLOW_PCT, SLOW_S, PERMITS, WAIT_S = 5, 3, 50, 60, 1.0, 2, 10.0


class Model:
    """Written from the resilience4j documentation, as plainly as possible."""

    def __init__(self) -> None:
        self.state = "CLOSED"
        self.calls: deque[tuple[bool, bool]] = deque(maxlen=WINDOW)  # (failed, slow)
        self.trials: list[tuple[bool, bool]] = []
        self.open_until = 0.0

    def call(self, now: float, failed: bool, slow: bool, ignored: bool) -> bool:
        """Returns whether the call was permitted."""
        if self.state == "OPEN":
            if now < self.open_until:
                return False
            self.state, self.trials = "HALF_OPEN", []
        if self.state == "HALF_OPEN" and len(self.trials) >= PERMITS:
            return False
        return True

    def finish(self, now: float, failed: bool, slow: bool, ignored: bool) -> None:
        if ignored:
            return
        if self.state == "CLOSED":
            self.calls.append((failed, slow))
            if len(self.calls) >= MINIMUM and self._trips(self.calls):
                self._open(now)
        elif self.state == "HALF_OPEN":
            self.trials.append((failed, slow))
            if len(self.trials) == PERMITS:
                if self._trips(self.trials):
                    self._open(now)
                else:
                    self.state, self.calls = "CLOSED", deque(maxlen=WINDOW)

    @staticmethod
    def _trips(outcomes) -> bool:
        n = len(outcomes)
        return (sum(f for f, _ in outcomes) * 100 / n >= FAILURE_PCT
                or sum(s for _, s in outcomes) * 100 / n >= SLOW_PCT)

    def _open(self, now: float) -> None:
        self.state, self.open_until = "OPEN", now + WAIT_S


class BreakerVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker("model", BreakerConfig(
            failure_rate_threshold=FAILURE_PCT, slow_call_rate_threshold=SLOW_PCT, slow_call_duration_s=SLOW_S,
            sliding_window_size=WINDOW, minimum_number_of_calls=MINIMUM, permitted_calls_in_half_open=PERMITS,
            wait_duration_open_s=WAIT_S, ignore_exceptions=(KeyError,), clock=self.clock))
        self.model = Model()
        self.loop = asyncio.new_event_loop()

    def teardown(self) -> None:
        self.loop.close()

    @rule(failed=st.booleans(), slow=st.booleans(), ignored=st.booleans())
    def call(self, failed: bool, slow: bool, ignored: bool) -> None:
        failed = failed and not ignored
        expected = self.model.call(self.clock.now, failed, slow, ignored)

        async def operation():
            if slow:
                self.clock.advance(SLOW_S * 1.5)
            if ignored:
                raise KeyError("business")
            if failed:
                raise Boom()
            return "ok"

        try:
            self.loop.run_until_complete(self.breaker.call(operation))
            permitted = True
        except (Boom, KeyError):
            permitted = True
        except CallNotPermitted:
            permitted = False
        assert permitted == expected
        if permitted:
            self.model.finish(self.clock.now, failed, slow, ignored)

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0, 25.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def same_state(self) -> None:
        assert self.breaker.state is BreakerState(self.model.state)


BreakerVersusModel.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_breaker_matches_the_reference_model = BreakerVersusModel.TestCase
