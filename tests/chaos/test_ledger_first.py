"""A fault's ledger entry is on disk before the fault touches anything.

So a run killed mid-injection (SIGKILL, a crash) leaves an entry that `lab heal`
can undo. Each real fault kind is injected with a spy in front of its own
``_inject``: the first thing the spy does is read the ledger directory from disk.
The same spy on a fault that writes its ledger after injecting sees nothing: the
check can fail.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lab.faults import FaultLedger
from lab.faults.base import class_path
from lab.faults.memory import MemoryLimit
from lab.faults.network import Flapping, Partition, ToxicFault, latency
from lab.faults.process import KillRestart, Pause

pytestmark = pytest.mark.chaos

FAULTS = {
    "toxic": lambda ledger, s: ToxicFault(ledger, s.proxy_url, "postgres", latency(10)),
    "partition": lambda ledger, s: Partition(ledger, s.proxy_url, "kafka"),
    "flapping": lambda ledger, s: Flapping(ledger, s.proxy_url, "postgres", down_s=0.2, up_s=0.2),
    "pause": lambda ledger, s: Pause(ledger, s, "kafka"),
    "kill_restart": lambda ledger, s: KillRestart(ledger, s, "postgres"),
    "memory_limit": lambda ledger, s: MemoryLimit(ledger, s, "postgres", 256 * 1024 * 1024),
}


def _on_disk(directory: Path, key: str) -> list[dict]:
    return [entry for entry in (json.loads(p.read_text()) for p in directory.glob("*.json")) if entry["key"] == key]


def _spy(fault) -> list[list[dict]]:
    """Wraps the fault's own injection: records what the ledger directory holds the moment it starts."""
    seen: list[list[dict]] = []
    inject = fault._inject

    async def spied():
        seen.append(_on_disk(fault.ledger.directory, fault.key()))
        return await inject()

    fault._inject = spied
    return seen


async def _inject_and_heal(fault) -> None:
    async with fault:
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_the_ledger_entry_is_on_disk_before_the_fault_touches_anything(chaos_settings, tmp_path, kind):
    ledger = FaultLedger(tmp_path / "ledger")
    fault = FAULTS[kind](ledger, chaos_settings)
    seen = _spy(fault)
    asyncio.run(_inject_and_heal(fault))
    assert len(seen) == 1 and len(seen[0]) == 1, f"{kind}: ledger entries on disk when injection began: {seen}"
    assert seen[0][0]["state"] == "injecting", seen[0][0]
    assert [e["state"] for e in _on_disk(ledger.directory, fault.key())] == ["healed"]


def test_a_fault_that_writes_its_ledger_after_injecting_is_caught(chaos_settings, tmp_path):
    class LedgerAfterInjection(ToxicFault):
        async def inject(self) -> None:  # the mutation: the two steps of Fault.inject swapped
            learned = await self._inject()
            self.entry = self.ledger.open(class_path(type(self)), self.kind, self.key(), self.heal_data())
            self.ledger.mark_active(self.entry, **(learned or {}))

    ledger = FaultLedger(tmp_path / "ledger")
    fault = LedgerAfterInjection(ledger, chaos_settings.proxy_url, "postgres", latency(10))
    seen = _spy(fault)
    asyncio.run(_inject_and_heal(fault))
    assert seen == [[]], "the spy must see no entry when the ledger is written after the injection"
