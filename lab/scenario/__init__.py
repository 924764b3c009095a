"""Scenarios: the model, the targets, the runner, the history, the checks, the reports."""

from .model import FaultContext, Scenario, available, load
from .profile import ClientProfile
from .runner import ScenarioResult, analyze, run, run_case
from .target import Lane, RunContext, Target
from .targets import LabClients, NegativeControl

__all__ = ["ClientProfile", "FaultContext", "LabClients", "Lane", "NegativeControl", "RunContext", "Scenario",
           "ScenarioResult", "Target", "analyze", "available", "load", "run", "run_case"]
