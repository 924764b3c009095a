"""The fault ledger (.lab/ledger/): every fault is written here BEFORE it is injected.

One JSON file per fault, replaced atomically: {"id", "kind", "key", "undo",
"state": injecting|active|healed, "injected_at", "healed_at"}. ``undo`` holds
everything needed to reverse the fault without the process that made it, so
``python -m lab heal`` can undo what a killed run left behind, and running it
twice is harmless.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from ..errors import LabError

INJECTING, ACTIVE, HEALED = "injecting", "active", "healed"


class FaultLedger:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, fault_id: str) -> Path:
        return self.directory / f"{fault_id}.json"

    def _write(self, entry: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(entry["id"])
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(entry, sort_keys=True))
        os.replace(temp, path)

    def open(self, kind: str, key: str, undo: dict[str, Any]) -> dict[str, Any]:
        """Record a fault about to be injected; refuses a second active fault with the same key."""
        for entry in self.unhealed():
            if entry["key"] == key:
                raise LabError(f"fault {key!r} is already injected (ledger entry {entry['id']}); heal it first "
                               f"(`python -m lab heal`)")
        entry = {"id": f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}", "kind": kind, "key": key,
                 "undo": undo, "state": INJECTING, "injected_at": time.time(), "healed_at": None}
        self._write(entry)
        return entry

    def update(self, entry: dict[str, Any], **changes: Any) -> None:
        entry.update(changes)
        self._write(entry)

    def mark_active(self, entry: dict[str, Any], **undo_changes: Any) -> None:
        entry["undo"].update(undo_changes)
        self.update(entry, state=ACTIVE)

    def mark_healed(self, entry: dict[str, Any]) -> None:
        self.update(entry, state=HEALED, healed_at=time.time())

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.directory.exists():
            return
        for path in sorted(self.directory.glob("*.json")):
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a half-written temp never has the .json name

    def unhealed(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["state"] != HEALED]

    def clear_healed(self) -> int:
        removed = 0
        for entry in list(self.entries()):
            if entry["state"] == HEALED:
                self._path(entry["id"]).unlink(missing_ok=True)
                removed += 1
        return removed
