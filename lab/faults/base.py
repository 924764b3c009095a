"""Fault: an async context manager that injects on enter and always heals on exit.

* parameters are frozen dataclasses, validated before anything is touched;
* the fault is written to the ledger before it is injected;
* if injecting fails half-way, whatever was done is healed before the error propagates;
* ``__aexit__`` heals on success, exception and cancellation: the heal is
  shielded from cancellation and bounded in time;
* ``heal()`` is idempotent and works with no prior inject (it reads the ledger's undo data);
* injecting the same fault twice (same key) is an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from ..errors import LabError, StateError
from .ledger import FaultLedger

log = logging.getLogger("lab.faults")
HEAL_TIMEOUT_S = 15.0


class FaultError(LabError):
    pass


def positive(name: str, value: float) -> None:
    if value <= 0:
        raise FaultError(f"{name} must be > 0, got {value!r}")


def non_negative(name: str, value: float) -> None:
    if value < 0:
        raise FaultError(f"{name} must be >= 0, got {value!r}")


class Fault:
    """Subclasses set ``kind``, build ``key()`` and ``undo()``, and implement ``_inject``.

    Undo functions are registered by kind in ``UNDO`` so the ledger can heal
    without the Fault object.
    """

    kind = "fault"

    def __init__(self, ledger: FaultLedger) -> None:
        self.ledger = ledger
        self.entry: dict[str, Any] | None = None
        self.injected_at: float | None = None
        self.healed_at: float | None = None

    def key(self) -> str:
        raise NotImplementedError

    def undo(self) -> dict[str, Any]:
        raise NotImplementedError

    async def _inject(self) -> dict[str, Any] | None:
        """Inject; may return undo data learned while injecting (pids, previous limits)."""
        raise NotImplementedError

    async def inject(self) -> None:
        self.entry = self.ledger.open(self.kind, self.key(), self.undo())
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
        await heal_entry(self.entry)
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
        return {"kind": self.kind, "key": self.key(), **{k: v for k, v in self.undo().items()}}


UNDO: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}


def undo_for(kind: str) -> Callable[[Callable[[dict[str, Any]], Awaitable[None]]], Callable[[dict[str, Any]], Awaitable[None]]]:
    def register(fn: Callable[[dict[str, Any]], Awaitable[None]]) -> Callable[[dict[str, Any]], Awaitable[None]]:
        UNDO[kind] = fn
        return fn

    return register


async def heal_entry(entry: dict[str, Any]) -> None:
    undo = UNDO.get(entry["kind"])
    if undo is None:
        raise FaultError(f"no way to heal fault kind {entry['kind']!r} (ledger entry {entry['id']})")
    await asyncio.wait_for(undo(entry["undo"]), HEAL_TIMEOUT_S)


async def heal_ledger(ledger: FaultLedger) -> list[str]:
    """Undo every unhealed fault in the ledger; returns their keys. Safe to run twice.

    Every good entry is healed even when others fail or cannot be read; then
    one FaultError names each failure and each bad entry (by file and problem).
    """
    from . import fd, memory, network, process  # noqa: F401  (register their undo functions)

    entries, bad = ledger.read()
    healed, failed = [], [str(b) for b in bad]
    for entry in entries:
        if entry["state"] == "healed":
            continue
        try:
            await heal_entry(entry)
            ledger.mark_healed(entry)
        except Exception as err:  # heal the others first; report this one after
            failed.append(f"{entry['key']} ({ledger.directory / (entry['id'] + '.json')}): {err}")
            continue
        healed.append(entry["key"])
    if failed:
        raise FaultError(f"healed {len(healed)} fault{'s' if len(healed) != 1 else ''} but could not heal "
                         f"{len(failed)}: {'; '.join(failed)}")
    return healed
