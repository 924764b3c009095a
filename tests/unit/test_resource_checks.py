"""The resource-growth check and the stored growth metrics, on made-up samples."""

from __future__ import annotations

import pytest

from lab.scenario.history import History
from lab.scenario.resources import growth, no_resource_growth

pytestmark = pytest.mark.unit


def _history(fds_after: int, tcp_after: int, sampled: bool = True) -> History:
    history = History(clock=lambda: 0.0)
    for name, start, end in (("baseline", 0.0, 2.0), ("fault", 2.0, 4.0), ("recovery", 4.0, 6.0)):
        history.add("phase", t=start, name=name, edge="start")
        history.add("phase", t=end, name=name, edge="end")
    if sampled:
        for t in (1.2, 1.5, 1.8):
            history.add("resource", t=t, process="workload", fds=20, tcp_connections=6, rss_bytes=1, threads=1)
        for t, spike in ((5.2, 0), (5.5, 40), (5.8, 0)):  # one sample mid-reconnect: the median ignores it
            history.add("resource", t=t, process="workload", fds=fds_after + spike, tcp_connections=tcp_after,
                        rss_bytes=2, threads=1)
    return history


@pytest.mark.parametrize("fds_after, tcp_after, expected", [
    (20, 6, "pass"), (30, 10, "pass"),  # back to its size, or within the slack (10 fds, 4 connections)
    (31, 6, "fail"), (20, 11, "fail"),  # one more than the slack
])
def test_growth_beyond_the_slack_fails(fds_after, tcp_after, expected):
    verdict = no_resource_growth()(_history(fds_after, tcp_after))
    assert verdict.result == expected, verdict.evidence
    assert f"fds 20 at the end of the baseline, {fds_after} at the end of the recovery" in verdict.evidence


def test_no_samples_is_unknown_never_pass():
    assert no_resource_growth()(_history(20, 6, sampled=False)).result == "unknown"


def test_growth_metrics_for_the_store():
    metrics = growth(_history(31, 9))
    assert metrics["resource.workload.fd_growth"] == 11 and metrics["resource.workload.tcp_growth"] == 3
    assert metrics["resource.workload.peak_fds"] == 71


def test_the_sampling_period_setting():
    from lab.config import Settings
    from lab.errors import ConfigError
    from lab.scenario.resources import sampler_for

    with pytest.raises(ConfigError, match="LAB_RESOURCE_SAMPLE_MS='fast'"):
        sampler_for(Settings(), History(), env={"LAB_RESOURCE_SAMPLE_MS": "fast"})
    off = sampler_for(Settings(), History(), env={"LAB_RESOURCE_SAMPLE_MS": "0"})
    assert off.checks() == []  # nothing sampled: the growth check is not run (it could only say unknown)


def test_a_short_recovery_is_judged_on_its_own_samples_not_the_faults():
    """connection_exhaustion: the flood's 200 connections are open until the heal; a recovery of 0.8 s must
    not reach back into them (found in a `--all --repeat 5` run: a median of one flood sample and one after)."""
    history = History(clock=lambda: 0.0)
    for name, start, end in (("baseline", 0.0, 1.0), ("fault", 1.0, 7.1), ("heal", 7.1, 7.4),
                             ("recovery", 7.4, 8.2)):
        history.add("phase", t=start, name=name, edge="start")
        history.add("phase", t=end, name=name, edge="end")
    for t, fds, tcp in ((0.5, 15, 5), (1.0, 15, 5), (7.3, 210, 200), (7.8, 12, 2)):
        history.add("resource", t=t, process="workload", fds=fds, tcp_connections=tcp, rss_bytes=1, threads=1)
    verdict = no_resource_growth()(history)
    assert verdict.result == "pass" and "15 at the end of the baseline, 12 at the end of the recovery" in \
        verdict.evidence
    assert growth(history)["resource.workload.tcp_growth"] == -3
