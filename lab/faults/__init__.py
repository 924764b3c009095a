"""Faults that always heal, and the ledger that lets `python -m lab heal` undo a killed run's faults.

Each fault kind is one class holding its inject and its heal (``heal_from``); the ledger names
the class by import path, so healing needs nothing registered beforehand.
"""

from ..errors import FaultError  # re-exported: lab.faults.FaultError is where callers have always found it
from . import fd, memory, network, process
from .base import Fault
from .heal import heal_ledger
from .ledger import FaultLedger

__all__ = ["Fault", "FaultError", "FaultLedger", "fd", "heal_ledger", "memory", "network", "process"]
