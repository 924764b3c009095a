"""Scenarios: the model, the runner, the history, the checks, the reports."""

from .model import FaultContext, Scenario, available, load
from .runner import ScenarioResult, run_scenario
from .targets import ClientProfile

__all__ = ["ClientProfile", "FaultContext", "Scenario", "ScenarioResult", "available", "load", "run_scenario"]
