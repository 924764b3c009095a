"""Runs a scenario: steady state -> baseline -> fault -> heal -> recovery wait -> final checks.

Faults heal whatever happens: the fault stack is an AsyncExitStack whose heals
are shielded and bounded; SIGTERM and Ctrl-C cancel the run, which unwinds the
stack; and a last ledger sweep heals anything still recorded as unhealed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from typing import Any, Callable

from ..config import Settings
from ..errors import LabError, StackError, UsageError
from ..faults import FaultLedger, heal_ledger
from ..proxy.client import ToxiproxyClient, ToxiproxyError
from ..stack import backend, health
from .checks import Verdict, probe_passes, run_check, worst
from .history import FAIL, OK, UNKNOWN, History
from .model import FaultContext, Scenario
from .mutants import Mutant
from .resources import sampler_for
from .targets import KafkaTarget, PgTarget

DRAIN_S = 3.0


@dataclasses.dataclass
class ScenarioResult:
    scenario: str
    negative_control: bool
    verdict: str  # pass | fail | unknown
    verdicts: list[Verdict]
    history: History
    faults: list[dict[str, Any]]
    duration_s: float
    measurements: dict[str, float]
    error: str | None = None
    mutant: str | None = None  # the mutant target it ran against (lab/scenario/mutants.py), None: the resilient one


class Workload:
    """One call per target every ``interval_s``, each in its own task, at most ``in_flight`` at once."""

    def __init__(self, targets: list[Any], history: History, interval_s: float, in_flight: int,
                 storm: Callable[[], bool] | None = None) -> None:
        self.targets, self.history, self.interval_s, self.in_flight = targets, history, interval_s, in_flight
        self.tasks: dict[asyncio.Task[None], tuple[Any, float, int]] = {}
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self.storm = storm

    def start(self) -> None:
        self._loops = [asyncio.ensure_future(self._drive(target)) for target in self.targets]

    async def _drive(self, target: Any) -> None:
        sequence = 0
        while not self._stop.is_set():
            active = sum(1 for t, (tgt, _, _) in self.tasks.items() if tgt is target)
            if active < self.in_flight:
                sequence += 1
                started = self.history.now()
                task = asyncio.ensure_future(self._call(target, sequence, started))
                self.tasks[task] = (target, started, sequence)
                task.add_done_callback(lambda t: self.tasks.pop(t, None))
                if self.storm is not None and self.storm():
                    delay = random.uniform(0, self.interval_s * 2)
                    asyncio.get_running_loop().call_later(delay, task.cancel)
            await asyncio.sleep(self.interval_s)

    async def _call(self, target: Any, sequence: int, started: float) -> None:
        state = target.state()
        try:
            await target.op(sequence)
        except asyncio.CancelledError:
            ended = self.history.now()
            self.history.add("op", UNKNOWN, t=ended, target=target.name, started=started, ended=ended,
                             latency_s=ended - started, error_class="Cancelled", breaker_state=state)
            raise
        except Exception as err:
            ended = self.history.now()
            self.history.add("op", FAIL, t=ended, target=target.name, started=started, ended=ended,
                             latency_s=ended - started, error_class=getattr(err, "error_class", type(err).__name__),
                             error=str(err)[:200], breaker_state=state)
            return
        ended = self.history.now()
        self.history.add("op", OK, t=ended, target=target.name, started=started, ended=ended,
                         latency_s=ended - started, breaker_state=state)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        pending = list(self.tasks)
        if pending:
            done, still = await asyncio.wait(pending, timeout=DRAIN_S)
            for task in still:  # never returned: the call hung
                target, started, _ = self.tasks.get(task, (None, 0.0, 0))
                task.cancel()
                if target is not None:
                    now = self.history.now()
                    self.history.add("op", UNKNOWN, t=now, target=target.name, started=started, ended=now,
                                     latency_s=now - started, error_class="Hung")
            await asyncio.gather(*still, return_exceptions=True)


async def steady_state(settings: Settings, history: History, targets: tuple[str, ...]) -> None:
    """Both servers answer through the proxy, and with the proxy down no request gets through.

    "Gets through" means a real protocol exchange, not a TCP connect: where a port is
    published by Docker, its forwarder accepts every connection and only then closes it.
    """
    pg = lambda port: health.postgres_ready(port, password=settings.pg_password, timeout_s=1.0)  # noqa: E731
    exchanges = {"pg": ("postgres", lambda: pg(settings.pg_proxy_port)),
                 "kafka": ("kafka", lambda: health.kafka_ready(settings.kafka_proxy_port, timeout_s=1.0))}
    chosen = {target: exchanges[target] for target in targets}
    try:
        for target, (_, exchange) in chosen.items():
            history.add("probe", OK, name=f"steady.{target}", evidence=await exchange())
        client = ToxiproxyClient(settings.proxy_url)
        for proxy, _ in chosen.values():
            await client.disable(proxy)
        try:
            for target, (proxy, exchange) in chosen.items():
                try:
                    evidence = await exchange()
                except health.Unhealthy:
                    continue
                raise StackError(f"{target}: answered with its proxy disabled ({evidence}): traffic bypasses "
                                 f"the proxy")
        finally:
            for proxy, _ in chosen.values():
                await client.enable(proxy)
        history.add("probe", OK, name="steady.proxy", evidence="with the proxies disabled no request gets through")
    except (health.Unhealthy, ToxiproxyError) as err:
        raise StackError(f"steady state not reached: {err} (is the stack up? `python -m lab up`)") from err


async def faults_healed(settings: Settings, ledger: FaultLedger, history: History) -> None:
    """The stack as ``up`` left it: ledger clean, proxies enabled without toxics, the backend's components
    running, not paused, not capped."""
    problems = []
    unhealed = ledger.unhealed()
    if unhealed:
        problems.append(f"{len(unhealed)} faults still in the ledger: {[e['key'] for e in unhealed]}")
    try:
        for name, proxy in (await ToxiproxyClient(settings.proxy_url).proxies()).items():
            if proxy.toxics:
                problems.append(f"proxy {name} still has toxics {[t.name for t in proxy.toxics]}")
            if not proxy.enabled:
                problems.append(f"proxy {name} is disabled")
    except ToxiproxyError as err:
        problems.append(f"proxy unreachable: {err}")
    try:
        problems += await asyncio.to_thread(backend.running(settings).problems)
    except LabError as err:
        problems.append(str(err))
    history.add("probe", FAIL if problems else OK, name="faults.healed",
                evidence="; ".join(problems) or "no toxics, every proxy enabled, every component running, "
                                                "ledger clean")


async def _wait_recovered(targets: list[Any], history: History, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(t.state() in ("CLOSED", "NONE") for t in targets):
            recent = [e for e in history.of("op") if e.t > history.now() - 0.3]
            if recent and all(e.status == OK for e in recent[-5:]):
                return time.monotonic() - started
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _p99(history: History, target: str, phase: str) -> float | None:
    window = history.phase(phase)
    if window is None:
        return None
    latencies = sorted(e.get("latency_s") for e in history.of("op") if e.get("target") == target
                       and e.status == OK and window[0] <= e.t <= window[1])
    return latencies[int(0.99 * (len(latencies) - 1))] if latencies else None


async def run_scenario(scenario: Scenario, settings: Settings, negative: bool = False,
                       on_phase: Callable[[str], None] = lambda phase: None,
                       mutant: Mutant | None = None) -> ScenarioResult:
    """Run ``scenario`` against the resilient clients, the negative control, or a ``mutant`` of the clients."""
    if negative and mutant is not None:
        raise UsageError("a run is against the negative control or a mutant, not both")
    history = History()
    sampler = sampler_for(settings, history)  # resource samples (lab/scenario/resources.py)
    ledger = FaultLedger(settings.state_path / "ledger")
    started = time.monotonic()
    built: list[Any] = []
    measurements: dict[str, float] = {}
    verdicts: list[Verdict] = []
    error = None

    def phase(name: str, edge: str) -> None:
        if edge == "end":
            sampler.at_phase_end(name)
        history.add("phase", name=name, edge=edge)
        if edge == "start":
            on_phase(name)

    targets: list[Any] = []
    try:
        phase("steady_state", "start")
        await steady_state(settings, history, scenario.targets)
        phase("steady_state", "end")
        if "pg" in scenario.targets:
            targets.append((scenario.pg_target or PgTarget)(settings, scenario.profile, history, negative,
                                                            scenario.pg_query, mutant=mutant))
        if "kafka" in scenario.targets:
            targets.append((scenario.kafka_target or KafkaTarget)(settings, scenario.profile, history, negative,
                                                                  scenario.consumer_session_s, mutant=mutant))
        for target in targets:
            await asyncio.wait_for(target.start(), 10)
        storm_rng = random.Random(7)
        storming = {"on": False}  # the storm rages during the fault phase only
        workload = Workload(targets, history, scenario.interval_s, scenario.profile.in_flight,
                            storm=(lambda: storming["on"] and storm_rng.random() < scenario.storm_rate)
                            if scenario.storm_rate else None)
        phase("baseline", "start")
        workload.start()
        await asyncio.sleep(scenario.baseline_s)
        phase("baseline", "end")
        try:
            async with contextlib.AsyncExitStack() as stack:
                built = scenario.faults(FaultContext(settings, ledger, scenario.profile))
                phase("fault", "start")
                storming["on"] = True
                for fault in built:
                    await stack.enter_async_context(fault)
                    history.add("fault", name=fault.key(), edge="inject", fault=fault.describe())
                await asyncio.sleep(scenario.fault_s)
                storming["on"] = False
                phase("fault", "end")
                phase("heal", "start")
            for fault in built:
                history.add("fault", name=fault.key(), edge="heal", report=fault.report())
            phase("heal", "end")
            phase("recovery", "start")
            measurements["recovery_s"] = await _wait_recovered(targets, history, scenario.recovery_timeout_s)
            await asyncio.sleep(0.5)  # let the last calls land
            phase("recovery", "end")
        finally:
            await workload.stop()
        phase("final", "start")
        for target in targets:
            await target.probes(_p99(history, target.name, "baseline"))
        phase("final", "end")
    except LabError as err:
        error = f"{type(err).__name__}: {err}"
    except Exception as err:  # a bug in a scenario or the runner: report it, the faults still heal
        import traceback

        notes = "".join(f"\n{note}" for note in getattr(err, "__notes__", []))
        error = f"runner crashed: {type(err).__name__}: {err}{notes}\n{traceback.format_exc(limit=5)}"
    finally:
        sampler.stop()
        for target in targets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(target.close(), 5)
        try:
            await asyncio.shield(heal_ledger(ledger))  # anything a crash left behind
        except LabError as err:
            error = (error + "; " if error else "") + str(err)
    await faults_healed(settings, ledger, history)
    if error is None:
        checks = (scenario.checks(scenario.profile) + [("faults healed", probe_passes("faults.healed"))]
                  + sampler.checks())
        verdicts = [run_check(name, check, history) for name, check in checks]
        verdict = worst(verdicts)
    else:
        verdicts = [Verdict("infrastructure", UNKNOWN, error)]
        verdict = UNKNOWN
    _measure(history, measurements)
    return ScenarioResult(scenario.name, negative, verdict, verdicts, history,
                          [f.describe() for f in built], time.monotonic() - started, measurements, error,
                          mutant.name if mutant is not None else None)


def _measure(history: History, measurements: dict[str, float]) -> None:
    """Detection (fault -> OPEN) and recovery (heal -> CLOSED) times per target."""
    fault = history.phase("fault")
    heal = history.phase("heal")
    for target in ("pg", "kafka"):
        transitions = [e for e in history.of("breaker") if e.get("target") == target]
        if fault:
            opened = next((e.t for e in transitions if e.get("to") == "OPEN" and e.t >= fault[0]), None)
            if opened is not None:
                measurements[f"{target}_detection_s"] = round(opened - fault[0], 3)
        if heal:
            closed = next((e.t for e in transitions if e.get("to") == "CLOSED" and e.t >= heal[0]), None)
            if closed is not None:
                measurements[f"{target}_recovery_s"] = round(closed - heal[0], 3)
