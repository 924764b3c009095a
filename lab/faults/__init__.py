"""Faults that always heal, and the ledger that lets `python -m lab heal` undo a killed run's faults."""

from . import fd, memory, network, process
from .base import Fault, FaultError, heal_ledger
from .ledger import FaultLedger

__all__ = ["Fault", "FaultError", "FaultLedger", "fd", "heal_ledger", "memory", "network", "process"]
