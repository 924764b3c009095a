"""The system under test, as the runner sees it: a ``Target`` and the ``Lane``s of calls it offers.

Jepsen's client protocol, in this lab's terms. A target is started once per run with a
``RunContext``, answers with its lanes, is probed after the recovery and closed whatever happened.
Each lane is one stream of calls (``op``) that the workload drives through every phase; it says which
stack components its calls exercise (``covers``), how each component's breaker is observed
(``breakers``: observed, or absent; a component it does not name is not told), whether the breaker's
own outcomes are in the history (``outcomes``), and which errors its calls may raise (``errors``).
The checks read that declaration from the history: what a target does not provide is UNKNOWN there,
never a pass.

Implementations: the lab's clients and the negative control (``lab.scenario.targets``), the mutants
(``lab.scenario.mutants``, through the lab's clients), and the user's own Python code
(``lab.scenario.python_target``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

from ..errors import UsageError
from .history import History

if TYPE_CHECKING:
    from ..config import Settings
    from .model import Scenario
    from .profile import ClientProfile


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a target is started with: the stack's settings, the scenario, its client profile, the history."""

    settings: "Settings"
    scenario: "Scenario"
    profile: "ClientProfile"
    history: History


class LaneDeclaration(Protocol):
    """What a lane says about itself (recorded by ``declare``): the evidence it provides."""

    # read-only in the protocol (properties), so a lane may hold them as plain attributes of narrower types
    @property
    def name(self) -> str: ...

    @property
    def covers(self) -> tuple[str, ...]:
        """The stack components its calls exercise ("pg", "kafka")."""
        ...

    @property
    def breakers(self) -> Mapping[str, str]:
        """Component -> "observed" | "absent"; a component not named: not told."""
        ...

    @property
    def outcomes(self) -> tuple[str, ...]:
        """Components whose breaker's own outcomes are recorded as "outcome" events."""
        ...

    @property
    def errors(self) -> Any:
        """"lab" (the lab's clients), a list of error class names, or None (not told)."""
        ...


@runtime_checkable
class Lane(LaneDeclaration, Protocol):
    async def op(self, sequence: int) -> None: ...

    def state(self) -> str:
        """The lane's breaker state now ("CLOSED", "OPEN", "HALF_OPEN"), or "NONE" where none is observed."""
        ...


@runtime_checkable
class Target(Protocol):
    name: str

    async def start(self, run: RunContext) -> Sequence[Lane]:
        """Connect and return the lanes to drive; bounded by the runner (10 s)."""
        ...

    async def probes(self, baseline_p99_s: Mapping[str, float | None]) -> None:
        """After the recovery: record probe events (pool state, read-back) in the history. The baseline p99
        of each lane's calls is given by lane name."""
        ...

    async def close(self) -> None:
        """Release everything; called whatever happened, bounded by the runner (5 s)."""
        ...


STATEMENT_COMPONENTS = ("pg",)  # the components whose protocol-aware faults match statements


def checked_statements(statements: Mapping[str, Any] | None, where: str) -> dict[str, str]:
    """``statements`` checked: each key a component whose faults match statements, each value a regular
    expression; a UsageError naming ``where`` and the bad entry otherwise."""
    checked: dict[str, str] = {}
    for component, pattern in (statements or {}).items():
        if component not in STATEMENT_COMPONENTS:
            raise UsageError(f"{where}: statements for {component!r}: only {', '.join(STATEMENT_COMPONENTS)} "
                             f"statements can be named (the protocol-aware faults that match statements)")
        if not isinstance(pattern, str) or not pattern:
            raise UsageError(f"{where}: statements[{component!r}] must be a non-empty regular expression, "
                             f"not {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as err:
            raise UsageError(f"{where}: statements[{component!r}] = {pattern!r} is not a regular expression: "
                             f"{err}") from None
        checked[component] = pattern
    return checked


def statements_of(target: object) -> dict[str, str]:
    """The patterns of the target's own statements by component (``{"pg": r"UPDATE stock"}``), which the
    protocol-aware faults (pg_admin_shutdown, pg_serialization_failures) match instead of the lab workload's: an
    optional attribute ``statements`` of a target; none named, ``{}``."""
    return dict(getattr(target, "statements", None) or {})


class Named(Protocol):
    @property
    def name(self) -> str: ...


def declare(history: History, target: "Named", lanes: Sequence[LaneDeclaration]) -> None:
    """Record what evidence ``target`` provides (read by ``lab.scenario.evidence``)."""
    breakers: dict[str, str] = {}
    for lane in lanes:
        breakers.update(lane.breakers)
    history.add("target", name=target.name,
                lanes=[{"name": lane.name, "covers": list(lane.covers),
                        "errors": lane.errors if lane.errors in (None, "lab") else list(lane.errors)}
                       for lane in lanes],
                breakers=breakers, outcomes=sorted({c for lane in lanes for c in lane.outcomes}),
                statements=statements_of(target))
