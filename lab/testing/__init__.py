"""The lab for a team's own pytest suite: fixtures (``lab.testing.plugin``, installed as a pytest11 entry
point), the fault controller ``Chaos``, the history ``Recorder`` and assertions built on the scenario checks."""

from .assertions import (CheckFailed, assert_breaker_cycle, assert_calls_bounded, assert_check,
                         assert_no_acked_loss, assert_recovered)
from .chaos import Chaos
from .recorder import Recorder

__all__ = ["Chaos", "CheckFailed", "Recorder", "assert_breaker_cycle", "assert_calls_bounded", "assert_check",
           "assert_no_acked_loss", "assert_recovered"]
