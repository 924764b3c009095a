"""The lab's clients' settings in a scenario: checks derive their bounds from these."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..resilience import BreakerConfig


@dataclasses.dataclass(frozen=True)
class ClientProfile:
    """The resilient clients' settings in a scenario; checks derive their bounds from these."""

    window: int = 10
    minimum_calls: int = 5
    failure_threshold_pct: float = 50.0
    slow_call_s: float = 5.0
    slow_threshold_pct: float = 100.0
    wait_open_s: float = 1.0
    permits: int = 2
    command_timeout_s: float = 1.0
    acquire_timeout_s: float = 1.0
    connect_timeout_s: float = 1.0
    send_deadline_s: float = 2.0
    request_timeout_s: float = 1.0
    pool_size: int = 5
    in_flight: int = 8  # concurrent workload calls per target

    def breaker(self, record: Any, ignore: Any = ()) -> BreakerConfig:
        return BreakerConfig(
            failure_rate_threshold=self.failure_threshold_pct, slow_call_rate_threshold=self.slow_threshold_pct,
            slow_call_duration_s=self.slow_call_s, sliding_window_size=self.window,
            minimum_number_of_calls=self.minimum_calls, permitted_calls_in_half_open=self.permits,
            wait_duration_open_s=self.wait_open_s, automatic_transition=True, max_wait_half_open_s=5.0,
            record_exceptions=record, ignore_exceptions=ignore)
