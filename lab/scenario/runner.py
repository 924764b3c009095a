"""Runs a scenario against a target, then judges the history: ``run_case`` acts, ``analyze`` judges.

``run_case(scenario, target, settings) -> History``: steady state -> baseline -> fault -> heal ->
recovery wait -> final probes, every step recorded as events. ``analyze(history, checks) ->
verdicts`` is a pure function of that history, so a verdict can be recomputed from a saved
journal. ``run`` does both and packs a ``ScenarioResult`` for the reports and the store.

Faults heal whatever happens: the fault stack is an AsyncExitStack whose heals are shielded and
bounded; SIGTERM and Ctrl-C cancel the run, which unwinds the stack; and a last ledger sweep heals
anything still recorded as unhealed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import traceback
from typing import Any, Callable, Mapping, Sequence

from ..config import Settings
from ..errors import LabError
from ..faults import FaultLedger, heal_ledger
from .checks import PASS, Check, Verdict, probe_passes, run_check, worst
from .history import OK, UNKNOWN, History
from .model import FaultContext, Scenario
from .resources import no_resource_growth, sampler_for
from .stack_probes import faults_healed, steady_state
from .target import Lane, RunContext, Target, declare, statements_of
from .workload import CancellationStorm, Workload

START_S, CLOSE_S = 10.0, 5.0


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
    mutant: str | None = None  # the mutant target it ran against (lab/scenario/mutants.py), None: not a mutant
    target: str = "lab clients"  # the Target's name


async def run_case(scenario: Scenario, target: Target, settings: Settings,
                   on_phase: Callable[[str], None] = lambda phase: None) -> History:
    """Run ``scenario`` against ``target`` and return what happened. Never raises for a failure of the stack,
    the target or the scenario: it is an ``error`` event, and the faults are healed either way."""
    history = History()
    sampler = sampler_for(settings, history)  # resource samples (lab/scenario/resources.py)
    ledger = FaultLedger(settings.state_path / "ledger")

    def phase(name: str, edge: str) -> None:
        if edge == "end":
            sampler.at_phase_end(name)
        history.add("phase", name=name, edge=edge)
        if edge == "start":
            on_phase(name)

    started = False
    try:
        phase("steady_state", "start")
        await steady_state(settings, history, scenario.components)
        phase("steady_state", "end")
        started = True
        lanes = await asyncio.wait_for(target.start(RunContext(settings, scenario, scenario.profile, history)),
                                       START_S)
        declare(history, target, lanes)
        storm = CancellationStorm(scenario.storm_rate) if scenario.storm_rate else None
        workload = Workload(lanes, history, scenario.interval_s, scenario.profile.in_flight, storm)
        phase("baseline", "start")
        workload.start()
        await asyncio.sleep(scenario.baseline_s)
        phase("baseline", "end")
        try:
            await _fault_and_recovery(scenario, settings, ledger, history, lanes, storm, phase,
                                      statements_of(target))
        finally:
            await workload.stop()
        phase("final", "start")
        await target.probes({lane.name: _p99(history, lane.name, "baseline") for lane in lanes})
        phase("final", "end")
    except LabError as err:
        history.add("error", UNKNOWN, error=f"{type(err).__name__}: {err}")
    except Exception as err:  # a bug in a scenario, a target or the runner: report it, the faults still heal
        notes = "".join(f"\n{note}" for note in getattr(err, "__notes__", []))
        history.add("error", UNKNOWN, error=f"runner crashed: {type(err).__name__}: {err}{notes}\n"
                                            f"{traceback.format_exc(limit=5)}")
    finally:
        sampler.stop()
        if started:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(target.close(), CLOSE_S)
        try:
            await asyncio.shield(heal_ledger(ledger))  # anything a crash left behind
        except LabError as err:
            history.add("error", UNKNOWN, error=str(err))
    await faults_healed(settings, ledger, history)
    return history


async def _fault_and_recovery(scenario: Scenario, settings: Settings, ledger: FaultLedger, history: History,
                              lanes: Sequence[Lane], storm: CancellationStorm | None,
                              phase: Callable[[str, str], None], statements: Mapping[str, str]) -> None:
    built = []
    async with contextlib.AsyncExitStack() as stack:
        built = scenario.faults(FaultContext(settings, ledger, scenario.profile, statements))
        phase("fault", "start")
        if storm is not None:
            storm.raging = True  # the storm rages during the fault phase only
        for fault in built:
            await stack.enter_async_context(fault)
            history.add("fault", name=fault.key(), edge="inject", fault=fault.describe())
        await asyncio.sleep(scenario.fault_s)
        if storm is not None:
            storm.raging = False
        phase("fault", "end")
        phase("heal", "start")
    for fault in built:
        history.add("fault", name=fault.key(), edge="heal", report=fault.report())
    phase("heal", "end")
    phase("recovery", "start")
    history.add("recovery", waited_s=await _wait_recovered(lanes, history, scenario.recovery_timeout_s))
    await asyncio.sleep(0.5)  # let the last calls land
    phase("recovery", "end")


def analyze(history: History, checks: Sequence[tuple[str, Check]],
            preconditions: Sequence[tuple[str, Check]] = ()) -> list[Verdict]:
    """The verdict of each precondition ("precondition: NAME") and each named check on ``history``, plus "faults
    healed"; a run that ended in an error is one UNKNOWN verdict naming it. Pure: reads the history only.

    A precondition says the fault took effect. One that did not pass is UNKNOWN, and so is every check: what
    they would have said is kept in the evidence, but a fault that did not bite proves nothing either way.
    "faults healed" is judged regardless (it is about the lab, not the client)."""
    errors = [e.get("error") for e in history.of("error")]
    if errors:
        return [Verdict("infrastructure", UNKNOWN, "; ".join(errors))]
    met = [run_check(f"precondition: {name}", check, history) for name, check in preconditions]
    unmet = [v for v in met if v.result != PASS]
    met = [dataclasses.replace(v, result=UNKNOWN, evidence=f"not met: {v.evidence}") if v in unmet else v
           for v in met]
    judged = [run_check(name, check, history) for name, check in checks]
    if unmet:
        names = ", ".join(v.check.removeprefix("precondition: ") for v in unmet)
        judged = [dataclasses.replace(v, result=UNKNOWN, evidence=f"unknown: the fault did not take effect "
                                                                  f"({names}); the check said {v.result}: {v.evidence}")
                  for v in judged]
    return met + judged + [run_check("faults healed", probe_passes("faults.healed"), history)]


def measure(history: History) -> dict[str, float]:
    """Detection (fault -> OPEN) and recovery (heal -> CLOSED) times per component, and the recovery wait."""
    measurements: dict[str, float] = {}
    waited = next(history.of("recovery"), None)
    if waited is not None:
        measurements["recovery_s"] = waited.get("waited_s")
    fault, heal = history.phase("fault"), history.phase("heal")
    for component in sorted({str(e.get("component")) for e in history.of("breaker")}):
        transitions = list(history.of("breaker", component=component))
        if fault:
            opened = next((e.t for e in transitions if e.get("to") == "OPEN" and e.t >= fault[0]), None)
            if opened is not None:
                measurements[f"{component}_detection_s"] = round(opened - fault[0], 3)
        if heal:
            closed = next((e.t for e in transitions if e.get("to") == "CLOSED" and e.t >= heal[0]), None)
            if closed is not None:
                measurements[f"{component}_recovery_s"] = round(closed - heal[0], 3)
    return measurements


async def run(scenario: Scenario, target: Target, settings: Settings,
              on_phase: Callable[[str], None] = lambda phase: None) -> ScenarioResult:
    """``run_case`` then ``analyze`` with the scenario's checks, packed for the reports and the run store."""
    started = time.monotonic()
    history = await run_case(scenario, target, settings, on_phase)
    own_checks = getattr(target, "checks", None)  # a black box (HTTP) is judged by its own kind of checks
    checks = own_checks(scenario) if own_checks else scenario.checks(scenario.profile)
    # a black box's own checks come with no preconditions: the scenario's are judged on the lab clients' calls
    preconditions = [] if own_checks else scenario.preconditions(scenario.profile)
    if any(history.of("sampler")):  # the sampler ran (it records itself when it stops): its check applies
        checks = checks + [("no fd or connection growth", no_resource_growth())]
    verdicts = analyze(history, checks, preconditions)
    errors = [e.get("error") for e in history.of("error")]
    mutant = getattr(target, "mutant", None)
    return ScenarioResult(scenario.name, bool(getattr(target, "negative", False)), worst(verdicts), verdicts,
                          history, [e.get("fault") for e in history.of("fault", edge="inject")],
                          time.monotonic() - started, measure(history), "; ".join(errors) or None,
                          mutant.name if mutant is not None else None, target.name)


async def _wait_recovered(lanes: Sequence[Lane], history: History, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(lane.state() in ("CLOSED", "NONE") for lane in lanes):
            recent = [e for e in history.of("op") if e.t > history.now() - 0.3]
            if recent and all(e.status == OK for e in recent[-5:]):
                return time.monotonic() - started
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _p99(history: History, lane: str, phase: str) -> float | None:
    window = history.phase(phase)
    if window is None:
        return None
    latencies = sorted(e.get("latency_s") for e in history.of("op") if e.get("lane") == lane
                       and e.status == OK and window[0] <= e.t <= window[1])
    return latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
