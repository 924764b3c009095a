"""Scenario: a plain description of one experiment, and the loader for lab/scenarios/*.py."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pkgutil
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import UsageError
from ..faults.factory import FaultFactory
from .checks import Check
from .profile import ClientProfile

if TYPE_CHECKING:
    from .targets import KafkaLane, PgLane


@dataclasses.dataclass(frozen=True)
class FaultContext(FaultFactory):
    """What a scenario's fault plan needs to build its faults, and the factories that build them
    (``ctx.partition("postgres")``, ``ctx.toxic("kafka", latency(100))``: lab/faults/factory.py)."""

    settings: Any  # lab.config.Settings
    ledger: Any  # lab.faults.FaultLedger
    profile: ClientProfile
    # per component, the pattern (a regular expression) of the target's own statements, where the target names it
    statements: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def statement(self, component: str, ours: str) -> str:
        """The pattern a protocol-aware fault on ``component`` matches: the target's own statements where it
        names them (``python_target(..., statements={"pg": r"UPDATE stock"})``), else ``ours``, the pattern of
        the lab workload's statement for that scenario."""
        return self.statements.get(component, ours)


def no_preconditions(profile: ClientProfile) -> list[tuple[str, Check]]:
    return []


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    components: tuple[str, ...]  # the stack components its workload exercises: "pg", "kafka"
    faults: Callable[[FaultContext], list[Any]]
    checks: Callable[[ClientProfile], list[tuple[str, Check]]]
    # what must be true of the fault for the checks to mean anything (it killed sessions, the memory limit bit):
    # judged like checks, but unmet makes the verdict UNKNOWN, not FAIL; they are not in the check-by-mutant matrix
    preconditions: Callable[[ClientProfile], list[tuple[str, Check]]] = no_preconditions
    profile: ClientProfile = ClientProfile()
    pass_criteria: str = ""
    baseline_s: float = 1.0
    fault_s: float = 3.0
    recovery_timeout_s: float = 8.0
    pg_query: str = "SELECT 1"
    interval_s: float = 0.025  # one call per target per interval
    storm_rate: float = 0.0  # fraction of calls the workload cancels mid-flight (cancellation storms)
    consumer_session_s: float | None = None  # also run a consumer-group member with this session timeout
    # why it needs Apache Kafka, if it does: skipped with this reason where the broker is Tansu
    needs_apache_kafka: str = ""
    # why it needs lab.proxy (its protocol-aware toxics), if it does: skipped with this reason behind Toxiproxy
    needs_lab_proxy: str = ""
    # the commands its faults run, and why: skipped with this reason where one is missing or the lab is not root
    needs_commands: tuple[str, ...] = ()
    needs_commands_why: str = ""
    # the lab's clients' lane for a component, where not the default one (a subclass of PgLane / KafkaLane)
    pg_lane: "type[PgLane] | None" = None
    kafka_lane: "type[KafkaLane] | None" = None

    def skip_reason(self, stack: Any) -> str:
        """Why this scenario cannot run on ``stack`` (a lab.stack Backend), or ''."""
        if self.needs_apache_kafka and stack.kafka_flavour() != "apache":
            return f"the broker is {stack.kafka_flavour()}: {self.needs_apache_kafka}"
        if self.needs_lab_proxy and stack.proxy_flavour() != "lab.proxy":
            return f"the fault proxy is {stack.proxy_flavour()}: {self.needs_lab_proxy}"
        if self.needs_commands:
            missing = [command for command in self.needs_commands if shutil.which(command) is None]
            if missing or os.geteuid() != 0:
                lacking = f"no {', '.join(missing)} on PATH" if missing else "the lab does not run as root"
                return f"{lacking}: {self.needs_commands_why}"
        return ""


def scenarios_dir() -> Path:
    """The lab's own scenarios: the package ``lab.scenarios``, which ships in the wheel."""
    return Path(__file__).resolve().parents[1] / "scenarios"


def _import_package() -> Any:
    return importlib.import_module("lab.scenarios")


def available() -> dict[str, Scenario]:
    """Scenarios in lab/scenarios/, then in each directory of LAB_SCENARIO_PATH (read when called)."""
    package = _import_package()
    found: dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        _register(found, importlib.import_module(f"lab.scenarios.{info.name}"))
    for directory in filter(None, os.environ.get("LAB_SCENARIO_PATH", "").split(os.pathsep)):
        for path in sorted(Path(directory).glob("*.py")):
            if path.name.startswith("_"):
                continue
            spec = importlib.util.spec_from_file_location(f"lab_user_scenarios.{path.stem}", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            # registered, so a fault class it defines has a module `lab heal` can find (by the file the ledger records)
            sys.modules[spec.name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as err:
                del sys.modules[spec.name]
                hint = (" (Scenario's `targets=` is now `components=`, `pg_target=`/`kafka_target=` are "
                        "`pg_lane=`/`kafka_lane=`)" if "target" in str(err) else "")
                raise UsageError(f"scenario module {path} does not load: {type(err).__name__}: {err}{hint}") from err
            _register(found, module)
    return found


def _register(found: dict[str, Scenario], module: Any) -> None:
    scenario = getattr(module, "SCENARIO", None)
    if isinstance(scenario, Scenario):
        found[scenario.name] = scenario


def load(names: list[str]) -> list[Scenario]:
    known = available()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown scenario{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"available: {', '.join(known)}")
    return [known[n] for n in names]
