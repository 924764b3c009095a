"""What evidence a run's target provides, read back from its declaration in the history.

A target declares itself once, at the start of a run (``history.add("target", ...)``, see
``lab.scenario.target.declare``): its lanes of calls and the components each exercises, whether each
component's breaker is observed, absent or not told, whether the breaker's own outcomes are
recorded, and which errors its calls may raise. Checks ask here before judging: a check whose
evidence the target does not provide is UNKNOWN with that reason, never a pass. A history with no
declaration (an old journal, a hand-written unit test) is read as the lab's own clients: a lane named
after its component, breakers observed.
"""

from __future__ import annotations

from typing import Any

from .history import History

#: A component's breaker, as a target declares it.
OBSERVED, ABSENT, UNTOLD = "observed", "absent", "untold"


def declaration(history: History) -> dict[str, Any] | None:
    event = next(history.of("target"), None)
    return dict(event.details) if event is not None else None


def covering_lanes(history: History, component: str) -> set[str]:
    """The names of the lanes whose calls exercise ``component``."""
    declared = declaration(history)
    if declared is None:
        return {component}
    return {lane["name"] for lane in declared.get("lanes", []) if component in lane.get("covers", ())}


def lacks_calls(history: History, component: str) -> str:
    """Why the target's calls cannot speak for ``component`` ('' when they can)."""
    declared = declaration(history)
    if declared is None or covering_lanes(history, component):
        return ""
    return f"target {declared.get('name')!r} makes no calls that exercise {component}"


def calls_not_the_labs(history: History, component: str) -> str:
    """Why the calls on ``component`` are not the lab's own clients' ('' when they are): a check that reads the
    fault's size from a call's latency knows the lab client's round trips per call, not a user service's."""
    declared = declaration(history)
    if declared is None:
        return ""
    for lane in declared.get("lanes", []):
        if component in lane.get("covers", ()) and lane.get("errors") != "lab":
            return f"target {declared.get('name')!r} makes calls of its own on {component}"
    return ""


def lacks_breaker(history: History, component: str) -> str:
    """Why the target's breaker events cannot speak for ``component`` ('' when they can).

    A breaker declared absent (the negative control has none) is evidence: the checks then fail on the
    missing transitions. Only a breaker the target does not tell about is unknown."""
    declared = declaration(history)
    if declared is None:
        return ""
    state = declared.get("breakers", {}).get(component, UNTOLD)
    if state == UNTOLD:
        return (f"target {declared.get('name')!r} does not say how its {component} breaker is observed "
                f"(give it a breaker adapter for {component})")
    return ""


def observed_without_outcomes(history: History, component: str) -> bool:
    """The component's breaker is observed, but through its transitions only (a third-party breaker's
    adapter): the outcomes its window counts are not in the history."""
    declared = declaration(history)
    return (declared is not None and declared.get("breakers", {}).get(component) == OBSERVED
            and not reports_outcomes(history, component))


def reports_outcomes(history: History, component: str) -> bool:
    """Whether the breaker's own recorded outcomes (``outcome`` events) are in the history."""
    declared = declaration(history)
    return declared is None or component in declared.get("outcomes", ())


def expected_errors(history: History, component: str, scenario_expects: set[str]) -> tuple[set[str] | None, str]:
    """The error classes calls on ``component`` may raise, or None and why that is not known.

    A lane declares ``errors``: "lab" (the lab's clients: what the scenario expects), a list of class
    names (the user's own), or nothing (not told: unknown)."""
    declared = declaration(history)
    if declared is None:
        return scenario_expects, ""
    names: set[str] = set()
    for lane in declared.get("lanes", []):
        if component not in lane.get("covers", ()):
            continue
        errors = lane.get("errors")
        if errors == "lab":
            names |= scenario_expects
        elif errors is None:
            return None, (f"target {declared.get('name')!r} does not declare which errors its calls on "
                          f"{component} may raise (expected_errors)")
        else:
            names |= set(errors)
    return names, ""
