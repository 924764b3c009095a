"""The fault ledger (.lab/ledger/): every fault is written here BEFORE it is injected.

One JSON file per fault, replaced atomically: {"id", "kind", "key", "undo",
"state": injecting|active|healed, "injected_at", "healed_at"}. ``undo`` holds
everything needed to reverse the fault without the process that made it, so
``python -m lab heal`` can undo what a killed run left behind, and running it
twice is harmless.

Entries are written atomically and fsynced (0600 in a 0700 directory: undo data
may hold a DSN with the Postgres password). They are validated on read: an
entry that is not valid JSON or lacks a field is a ``BadEntry`` naming its file
and the problem, reported by ``read()`` and never skipped silently (a truncated
entry may be an active fault).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from ..errors import LabError
from ..files import private_dir, write_private

INJECTING, ACTIVE, HEALED = "injecting", "active", "healed"
STATES = (INJECTING, ACTIVE, HEALED)
REQUIRED = {"id": str, "kind": str, "key": str, "undo": dict, "state": str}


@dataclasses.dataclass(frozen=True)
class BadEntry:
    """A ledger file that cannot be used: left in place for a person to look at."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"ledger entry {self.path}: {self.problem}"


def validate(path: Path, text: str) -> dict[str, Any]:
    """The entry in ``text``; ValueError saying what is wrong with it."""
    try:
        entry = json.loads(text)
    except ValueError as err:
        raise ValueError(f"not valid JSON ({err}); it may be a fault still in force: undo it by hand, "
                         f"then delete the file") from None
    if not isinstance(entry, dict):
        raise ValueError(f"not a JSON object but a {type(entry).__name__}")
    for field, kind in REQUIRED.items():
        if field not in entry:
            raise ValueError(f"missing the field {field!r}")
        if not isinstance(entry[field], kind):
            raise ValueError(f"field {field!r} is {type(entry[field]).__name__}, not {kind.__name__}")
    if entry["state"] not in STATES:
        raise ValueError(f"field 'state' is {entry['state']!r}, not one of {', '.join(STATES)}")
    if f"{entry['id']}.json" != path.name:
        raise ValueError(f"its id {entry['id']!r} does not match the file name")
    return entry


class FaultLedger:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, fault_id: str) -> Path:
        return self.directory / f"{fault_id}.json"

    def _write(self, entry: dict[str, Any]) -> None:
        private_dir(self.directory)
        write_private(self._path(entry["id"]), json.dumps(entry, sort_keys=True).encode())

    def open(self, kind: str, key: str, undo: dict[str, Any]) -> dict[str, Any]:
        """Record a fault about to be injected.

        Refuses a second active fault with the same key, and any fault while an
        unreadable entry (which may be that same fault, still in force) is in the ledger.
        """
        from .base import FaultError

        entries, bad = self.read()
        if bad:
            raise FaultError(f"{bad[0]}; fix or remove it (see `python -m lab heal`) before injecting {key!r}")
        for entry in entries:
            if entry["state"] != HEALED and entry["key"] == key:
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

    def read(self) -> tuple[list[dict[str, Any]], list[BadEntry]]:
        """Every valid entry, in order, and every file that is not one (temp files never end in .json)."""
        entries: list[dict[str, Any]] = []
        bad: list[BadEntry] = []
        try:
            paths = sorted(self.directory.glob("*.json")) if self.directory.exists() else []
        except OSError as err:
            return [], [BadEntry(self.directory, f"unreadable directory ({err.strerror})")]
        for path in paths:
            try:
                entries.append(validate(path, path.read_text()))
            except (OSError, UnicodeDecodeError) as err:
                bad.append(BadEntry(path, f"unreadable ({getattr(err, 'strerror', None) or err})"))
            except ValueError as err:
                bad.append(BadEntry(path, str(err)))
        return entries, bad

    def entries(self) -> Iterator[dict[str, Any]]:
        """The valid entries (``read()`` also says which files are not)."""
        yield from self.read()[0]

    def unhealed(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["state"] != HEALED]

    def clear_healed(self) -> int:
        removed = 0
        for entry in list(self.entries()):
            if entry["state"] == HEALED:
                self._path(entry["id"]).unlink(missing_ok=True)
                removed += 1
        return removed
