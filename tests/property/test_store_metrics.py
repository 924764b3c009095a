"""The run store's one-pass metrics equal the per-phase, per-lane scans they replaced (Hypothesis).

``phase_metrics`` and ``growth`` went from a scan of the history per lane and phase (per process) to one
pass, to take the store's record off a scenario's time (bench/recording_bench.py); every value a stored
result holds must stay what it was. The scans are kept here as the reference.
"""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.scenario.history import FAIL, OK, History
from lab.scenario.resources import growth
from lab.scenario.store import phase_metrics

pytestmark = pytest.mark.property


def reference_phase_metrics(history: History) -> dict[str, float]:
    metrics: dict[str, float] = {}
    ops = list(history.of("op"))
    lanes = sorted({str(e.get("lane")) for e in ops})
    for phase in ("baseline", "fault", "recovery"):
        window = history.phase(phase)
        if window is None:
            continue
        for lane in lanes:
            inside = [e for e in ops if e.get("lane") == lane and window[0] <= e.t <= window[1]]
            latencies = sorted(float(e.get("latency_s", 0.0)) for e in inside if e.status == OK)
            metrics[f"{lane}.{phase}.errors"] = float(sum(1 for e in inside if e.status != OK))
            for pct in (50, 95, 99):
                if latencies:
                    index = min(len(latencies) - 1, round(pct / 100 * (len(latencies) - 1)))
                    metrics[f"{lane}.{phase}.p{pct}_s"] = latencies[index]
    return metrics


def reference_growth(history: History) -> dict[str, float]:
    def level(samples: list, field: str) -> float:
        return statistics.median(float(e.get(field)) for e in samples)

    metrics: dict[str, float] = {}
    for name in sorted({str(e.get("process")) for e in history.of("resource")}):
        samples = list(history.of("resource", process=name))
        metrics[f"resource.{name}.peak_rss_bytes"] = float(max(e.get("rss_bytes") for e in samples))
        metrics[f"resource.{name}.peak_fds"] = float(max(e.get("fds") for e in samples))
        baseline, recovery = history.phase("baseline"), history.phase("recovery")
        if baseline is None or recovery is None:
            continue
        before = [e for e in samples if max(baseline[0], baseline[1] - 1.0) <= e.t <= baseline[1]]
        after = [e for e in samples if max(recovery[0], recovery[1] - 1.0) <= e.t <= recovery[1]]
        if before and after:
            metrics[f"resource.{name}.fd_growth"] = level(after, "fds") - level(before, "fds")
            metrics[f"resource.{name}.tcp_growth"] = level(after, "tcp_connections") - level(before, "tcp_connections")
    return metrics


PHASES = ("steady_state", "baseline", "fault", "heal", "recovery")
times = st.integers(0, 40).map(lambda tenths: tenths / 10)  # on a coarse grid: calls land on phase edges
ops = st.tuples(times, st.sampled_from(["pg", "kafka", "http"]), st.sampled_from([OK, OK, FAIL]),
                st.one_of(st.none(), st.integers(1, 500).map(lambda ms: ms / 1000)))
samples = st.tuples(times, st.sampled_from(["workload", "postgres"]), st.integers(0, 300), st.integers(0, 50),
                    st.integers(1, 10**9))


@st.composite
def histories(draw: st.DrawFn) -> History:
    history = History(clock=lambda: 4.0)  # an unfinished phase ends "now"
    edges = sorted(draw(st.lists(times, min_size=2 * len(PHASES), max_size=2 * len(PHASES))))
    present = draw(st.lists(st.sampled_from(PHASES), unique=True))
    ended = draw(st.lists(st.sampled_from(PHASES), unique=True))
    for index, phase in enumerate(PHASES):
        if phase in present:
            history.add("phase", t=edges[2 * index], name=phase, edge="start")
            if phase in ended:
                history.add("phase", t=edges[2 * index + 1], name=phase, edge="end")
    for t, lane, status, latency_s in draw(st.lists(ops, max_size=60)):
        details = {"lane": lane, "started": t} | ({} if latency_s is None else {"latency_s": latency_s})
        history.add("op", status, t=t, **details)
    for t, process, fds, tcp, rss in draw(st.lists(samples, max_size=30)):
        history.add("resource", t=t, process=process, fds=fds, tcp_connections=tcp, rss_bytes=rss, threads=1)
    history.events.sort(key=lambda e: e.t)
    return history


@settings(max_examples=300, deadline=None)
@given(histories())
def test_phase_metrics_are_what_the_scans_gave(history):
    assert phase_metrics(history) == reference_phase_metrics(history)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_growth_metrics_are_what_the_scans_gave(history):
    assert growth(history) == reference_growth(history)
