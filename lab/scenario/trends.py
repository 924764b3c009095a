"""Trends across stored runs, as pure functions: pass rate, the flaky flag, baselines and regressions.

* flaky: over the last ``window`` results (at least ``min_runs``), a failure rate strictly between
  10% and 90%, or a verdict that flipped between pass and not-pass ``flips`` times or more;
* baseline of a metric: the median of its values in the last ``baseline_runs`` passing results;
* regression: the newest passing result's metric beyond baseline x (1 + threshold) plus three robust
  standard deviations of the baseline values (1.4826 x their median absolute deviation), so a noisy
  metric needs a bigger step; never with fewer than ``min_samples`` baseline values. Only times
  (metrics named ``*_s``) are judged: higher is worse for every one of them.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Sequence

from .store import StoredResult

PASS = "pass"


@dataclasses.dataclass(frozen=True)
class Policy:
    window: int = 20
    min_runs: int = 10
    low_failure_rate: float = 0.10
    high_failure_rate: float = 0.90
    flips: int = 4
    baseline_runs: int = 10
    min_samples: int = 5
    threshold: float = 0.5


@dataclasses.dataclass(frozen=True)
class Regression:
    metric: str
    value: float
    baseline: float
    allowed: float


@dataclasses.dataclass(frozen=True)
class Trend:
    scenario: str
    runs: int
    pass_rate: float
    flaky: str  # why it is flaky, or ""
    baselines: dict[str, float]
    regressions: list[Regression]


def flaky_reason(verdicts: Sequence[str], policy: Policy = Policy()) -> str:
    recent = list(verdicts)[-policy.window:]
    if len(recent) < policy.min_runs:
        return ""
    failed = sum(1 for v in recent if v != PASS)
    rate = failed / len(recent)
    if policy.low_failure_rate < rate < policy.high_failure_rate:
        return f"{failed} of the last {len(recent)} runs did not pass ({rate:.0%})"
    flips = sum(1 for a, b in zip(recent, recent[1:]) if (a == PASS) != (b == PASS))
    if flips >= policy.flips:
        return f"its verdict flipped {flips} times in the last {len(recent)} runs"
    return ""


def robust_spread(values: Sequence[float]) -> float:
    center = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - center) for v in values)


def regressions(results: Sequence[StoredResult], policy: Policy = Policy()) -> tuple[dict[str, float],
                                                                                     list[Regression]]:
    """(baselines, regressions of the newest passing result against the passing results before it)."""
    passing = [r for r in results if r.verdict == PASS]
    if not passing:
        return {}, []
    newest, before = passing[-1], passing[:-1][-policy.baseline_runs:]
    baselines: dict[str, float] = {}
    found = []
    for metric in sorted(k for k in newest.metrics if k.endswith("_s")):
        values = [r.metrics[metric] for r in before if metric in r.metrics]
        if len(values) < policy.min_samples:
            continue
        baseline = statistics.median(values)
        baselines[metric] = baseline
        allowed = baseline * (1 + policy.threshold) + 3 * robust_spread(values)
        if newest.metrics[metric] > allowed:
            found.append(Regression(metric, newest.metrics[metric], baseline, allowed))
    return baselines, found


def trend(scenario: str, results: Sequence[StoredResult], policy: Policy = Policy()) -> Trend:
    verdicts = [r.verdict for r in results]
    baselines, found = regressions(results, policy)
    rate = sum(1 for v in verdicts if v == PASS) / len(verdicts) if verdicts else 0.0
    return Trend(scenario, len(verdicts), rate, flaky_reason(verdicts, policy), baselines, found)


def newly_flaky(results: Sequence[StoredResult], policy: Policy = Policy()) -> bool:
    """Flaky now, and not as of the result before the newest."""
    verdicts = [r.verdict for r in results]
    return bool(flaky_reason(verdicts, policy)) and not flaky_reason(verdicts[:-1], policy)
