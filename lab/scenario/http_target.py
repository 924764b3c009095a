"""A black-box HTTP service as a Target, loaded by Locust through every phase.

    python -m lab run network_partition --target http://127.0.0.1:8000/orders

Locust (``lab.scenario.http_load``) drives the load, not the lab's workload: the target's one lane,
"http", is self-driven, and every request Locust makes becomes an ``op`` event of that lane
(error class "HTTP 503", "ConnectionRefusedError", ...). It is judged by the HTTP checks
(``http_checks``) instead of the scenario's client checks, which need evidence a black box does not
give: the service fails fast during the fault, its error rate returns to the baseline's after the
heal, its throughput recovers to 90% of the baseline's; and, where ``breaker_metric`` names the
Prometheus gauge its ``/metrics`` exports (one ``BreakerMetric``, or several: one per component, a pg
breaker and a kafka one), each breaker goes OPEN and back (``lab.scenario.prometheus``).
Per-phase requests/s, p50/p95/p99 and error rate are the ``http.phases`` probe.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Mapping, Sequence

from ..errors import UsageError
from .checks import Check
from .history import FAIL, OK, History
from .http_checks import (SETTLE_S, breaker_open_and_back, error_rate_recovers, fails_fast, phase_figures,
                          throughput_recovers)
from .http_load import HttpCall, LocustLoad
from .prometheus import BreakerMetric, MetricsWatcher
from .target import RunContext, checked_statements

DRAIN_S = 0.05


class _HttpLane:
    name = "http"
    self_driven = True  # Locust drives it; the lab's workload leaves it alone
    outcomes: tuple[str, ...] = ()

    def __init__(self, covers: tuple[str, ...], breakers: Mapping[str, str], errors: list[str],
                 watchers: Sequence[MetricsWatcher]) -> None:
        self.covers, self.breakers, self.errors, self.watchers = covers, dict(breakers), errors, tuple(watchers)

    async def op(self, sequence: int) -> None:  # never called: self-driven
        raise NotImplementedError

    def state(self) -> str:
        """The worst state of the service's breakers read from /metrics (any OPEN, then any HALF_OPEN)."""
        states = [watcher.state() for watcher in self.watchers]
        return next((s for s in ("OPEN", "HALF_OPEN") if s in states), "CLOSED" if states else "NONE")


class HttpTarget:
    def __init__(self, call: HttpCall, *, users: int = 10, spawn_rate: float = 50.0, rate_per_user: float = 20.0,
                 fail_fast_s: float = 1.0, breaker_metric: BreakerMetric | Sequence[BreakerMetric] | None = None,
                 name: str | None = None, statements: Mapping[str, str] | None = None) -> None:
        self.call, self.users, self.spawn_rate, self.rate_per_user = call, users, spawn_rate, rate_per_user
        self.fail_fast_s = fail_fast_s
        self.breaker_metrics: tuple[BreakerMetric, ...] = (
            () if breaker_metric is None else (breaker_metric,) if isinstance(breaker_metric, BreakerMetric)
            else tuple(breaker_metric))
        components = [metric.component for metric in self.breaker_metrics]
        twice = sorted({c for c in components if components.count(c) > 1})
        if twice:
            raise UsageError(f"http target: two breaker metrics for {', '.join(twice)}: give one per component")
        self.name = name or f"http {call.method} {call.url}"
        # the service's own statements by component, for the protocol-aware faults (lab.scenario.target)
        self.statements = checked_statements(statements, f"http target {self.name!r}")
        self._load: LocustLoad | None = None
        self._drain: asyncio.Task[None] | None = None
        self._watchers: list[MetricsWatcher] = []
        self._history: History | None = None

    def checks(self, scenario: Any = None) -> list[tuple[str, Check]]:
        """What an HTTP target is judged by, whatever the scenario's fault; a breaker only where the scenario's
        fault touches its component (``scenario.components``; no scenario: every breaker), as a Postgres fault
        gives the service's Kafka breaker no cause to open."""
        named = [("http: fails fast during the fault", fails_fast(self.fail_fast_s, self.call.timeout_s)),
                 ("http: error rate back to baseline", error_rate_recovers()),
                 ("http: throughput back to 90% of baseline", throughput_recovers(0.9))]
        touched = getattr(scenario, "components", None)
        for metric in self.breaker_metrics:
            if touched is not None and metric.component not in touched:
                continue
            named.append((f"{metric.component}: breaker OPEN in the fault and back (from /metrics)",
                          breaker_open_and_back(metric.component)))
        return named

    async def start(self, run: RunContext) -> Sequence[_HttpLane]:
        self._history = run.history
        breakers: dict[str, str] = {}
        self._watchers = [MetricsWatcher(metric, run.history) for metric in self.breaker_metrics]
        for watcher in self._watchers:
            watcher.start()
            breakers[watcher.spec.component] = "observed"
        self._load = LocustLoad(self.call, self.users, self.spawn_rate, self.rate_per_user)
        self._load.start()
        self._drain = asyncio.ensure_future(self._drain_forever())
        expected = [f"HTTP {s}" for s in (503, 429)]  # a fast refusal is the resilient answer to a fault
        return [_HttpLane(tuple(run.scenario.components), breakers, expected, self._watchers)]

    def _record(self) -> None:
        history, load = self._history, self._load
        assert history is not None and load is not None
        for request in load.drain():
            t = request.ended - history.started
            history.add("op", OK if request.error is None else FAIL, t=t, lane="http", started=t - request.latency_s,
                        ended=t, latency_s=request.latency_s, status_code=request.status,
                        **({"error_class": request.error} if request.error else {}))

    async def _drain_forever(self) -> None:
        while True:
            await asyncio.sleep(DRAIN_S)
            self._record()

    async def probes(self, baseline_p99_s: Mapping[str, float | None]) -> None:
        assert self._history is not None
        await asyncio.sleep(SETTLE_S)  # the load stays on: what the service recovered to is judged on this
        self._record()
        figures = phase_figures(self._history, "http")
        self._history.add("probe", OK if figures else FAIL, name="http.phases", phases=figures,
                          evidence="; ".join(f"{p}: {f['rps']:.0f} req/s, p50 {f['p50_ms']:.1f} ms, p95 "
                                             f"{f['p95_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, errors "
                                             f"{f['error_rate']:.1%}" for p, f in figures.items())
                          or "no requests recorded")

    async def close(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
        if self._load is not None:
            await asyncio.to_thread(self._load.stop)
            self._record()
        for watcher in self._watchers:
            await watcher.stop()


def http_target(url: str, **options: Any) -> HttpTarget:
    """``http_target(url, method=, body=, headers=, expected_statuses=, timeout_s=, users=, spawn_rate=,
    rate_per_user=, fail_fast_s=, breaker_metric=)``. By default 10 users offer 20 requests/s each."""
    call_fields = {f.name for f in dataclasses.fields(HttpCall)} - {"url"}
    call = HttpCall(url, **{k: v for k, v in options.items() if k in call_fields})
    return HttpTarget(call, **{k: v for k, v in options.items() if k not in call_fields})
