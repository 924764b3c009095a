"""Fault: one class per kind that holds both its inject and its heal (a Jepsen nemesis).

* parameters are validated before anything is touched;
* the fault is written to the ledger before it is injected, naming its class by import path
  (``module:QualName``) with the data its heal needs (``heal_data()``);
* the heal is the class's own ``heal_from(data)`` classmethod: the instance calls it on exit, and
  ``python -m lab heal`` in another process imports the class the ledger names and calls the same
  method with the same data, so the heal of any fault is one hop from its class;
* if injecting fails half-way, whatever was done is healed before the error propagates;
* ``__aexit__`` heals on success, exception and cancellation: the heal is shielded from
  cancellation and bounded in time;
* ``heal()`` is idempotent and works with no prior inject;
* injecting the same fault twice (same key) is an error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from ..errors import FaultError, StateError
from .ledger import FaultLedger

__all__ = ["HEAL_TIMEOUT_S", "Fault", "FaultError", "class_file", "class_path", "non_negative", "positive"]

log = logging.getLogger("lab.faults")
HEAL_TIMEOUT_S = 15.0


def positive(name: str, value: float) -> None:
    if value <= 0:
        raise FaultError(f"{name} must be > 0, got {value!r}")


def non_negative(name: str, value: float) -> None:
    if value < 0:
        raise FaultError(f"{name} must be >= 0, got {value!r}")


def class_path(cls: type) -> str:
    """``module:QualName``: what the ledger records so that another process can import the class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def class_file(cls: type) -> str | None:
    """The file defining ``cls``: how ``lab heal`` finds a class whose module is not importable by name."""
    module = sys.modules.get(cls.__module__)
    return getattr(module, "__file__", None)


class Fault:
    """Subclasses set ``kind``, build ``key()`` and ``heal_data()``, and implement ``_inject`` and ``heal_from``.

    ``heal_from`` must be harmless when nothing was injected, and when run twice.
    """

    kind = "fault"

    def __init__(self, ledger: FaultLedger) -> None:
        self.ledger = ledger
        self.entry: dict[str, Any] | None = None
        self.injected_at: float | None = None
        self.healed_at: float | None = None

    def key(self) -> str:
        raise NotImplementedError

    def heal_data(self) -> dict[str, Any]:
        """Everything ``heal_from`` needs, as JSON: recorded before the fault is injected."""
        raise NotImplementedError

    async def _inject(self) -> dict[str, Any] | None:
        """Inject; may return heal data learned while injecting (pids, previous limits)."""
        raise NotImplementedError

    @classmethod
    async def heal_from(cls, data: dict[str, Any]) -> None:
        """Undo this kind of fault from its ledger data alone (no instance: maybe another process)."""
        raise NotImplementedError

    async def inject(self) -> None:
        self.entry = self.ledger.open(class_path(type(self)), self.kind, self.key(), self.heal_data(),
                                      fault_file=class_file(type(self)))
        try:
            learned = await self._inject()
        except BaseException as original:
            try:
                await self.heal()
            except Exception as heal_error:  # keep the first error; say the heal failed too
                original.add_note(f"healing the half-injected fault {self.key()!r} also failed: {heal_error}")
            raise
        try:
            self.ledger.mark_active(self.entry, **(learned or {}))
        except (OSError, StateError) as err:
            # e.g. EMFILE while a client-side fd fault is in force; the entry written before the
            # injection already holds what heal needs, and heal treats "injecting" like "active"
            log.warning("fault %s: ledger not updated to active: %s", self.key(), err)
        self.injected_at = time.monotonic()

    async def heal(self) -> None:
        if self.entry is None or self.entry["state"] == "healed":
            return
        await asyncio.wait_for(type(self).heal_from(self.entry["heal_data"]), HEAL_TIMEOUT_S)
        self.ledger.mark_healed(self.entry)
        self.healed_at = time.monotonic()

    async def __aenter__(self) -> "Fault":
        await self.inject()
        return self

    async def __aexit__(self, *exc: object) -> None:
        task = asyncio.ensure_future(self.heal())
        try:
            await asyncio.wait_for(asyncio.shield(task), HEAL_TIMEOUT_S)
        except asyncio.CancelledError:
            await asyncio.wait_for(task, HEAL_TIMEOUT_S)  # cancelled while healing: finish healing first
            raise

    def report(self) -> dict[str, Any]:
        """What the fault observed while in force (recorded in the history at heal)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key(), **self.heal_data()}
