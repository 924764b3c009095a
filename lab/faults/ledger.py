"""The fault ledger (.lab/ledger/): every fault is written here BEFORE it is injected.

One JSON file per fault, replaced atomically (format 2): {"format": 2, "id", "fault", "kind",
"key", "heal_data", "state": injecting|active|healed, "injected_at", "healed_at"}, and
"fault_file" where known. ``fault`` names the class that heals the entry by import path
(``module:QualName``), ``heal_data`` holds everything its ``heal_from`` needs without the
process that made the fault, so ``python -m lab heal`` can undo what a killed run left behind,
and running it twice is harmless.

Format 1 (no "format" field; written by chaoslab before fault classes held their own heal:
{"id", "kind", "key", "undo", "state", ...}) is read as format 2: its kind names the class
through ``FORMAT_1_FAULTS`` and its ``undo`` data is the same heal data. A format-1 kind not
in that table, or a format newer than this code, is a ``BadEntry`` that says so.

Entries are written atomically and fsynced (0600 in a 0700 directory: heal data
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

from ..errors import FaultError
from ..files import private_dir, write_private

__all__ = ["ACTIVE", "FORMAT", "FORMAT_1_FAULTS", "HEALED", "INJECTING", "STATES", "BadEntry", "FaultLedger",
           "validate"]

INJECTING, ACTIVE, HEALED = "injecting", "active", "healed"
STATES = (INJECTING, ACTIVE, HEALED)
FORMAT = 2
REQUIRED: dict[str, type] = {"id": str, "fault": str, "kind": str, "key": str, "heal_data": dict, "state": str}
FORMAT_1_REQUIRED: dict[str, type] = {"id": str, "kind": str, "key": str, "undo": dict, "state": str}
#: the classes that heal what format 1 called each kind (their heal data is format 1's undo data, unchanged)
FORMAT_1_FAULTS = {
    "toxic": "lab.faults.network:ToxicFault",
    "partition": "lab.faults.network:Partition",
    "flapping": "lab.faults.network:Flapping",
    "drop": "lab.faults.network:Partition",  # DropConnections is gone; its heal was the partition's (enable)
    "pause": "lab.faults.process:Pause",
    "kill": "lab.faults.process:KillRestart",
    "crash": "lab.faults.process:CrashBackend",
    "fd_limit": "lab.faults.fd:ServerFdLimit",
    "flood": "lab.faults.fd:ConnectionFlood",
    "client_fd_limit": "lab.faults.fd:ClientFdLimit",
    "memory_limit": "lab.faults.memory:MemoryLimit",
    "memory_trigger": "lab.faults.memory:MemoryTrigger",
    "memory_hog": "lab.faults.memory:MemoryHog",
}


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
        entry: Any = json.loads(text)
    except ValueError as err:
        raise ValueError(f"not valid JSON ({err}); it may be a fault still in force: undo it by hand, "
                         f"then delete the file") from None
    if not isinstance(entry, dict):
        raise ValueError(f"not a JSON object but a {type(entry).__name__}")
    version = entry.get("format", 1)
    if version == 1:
        _require(entry, FORMAT_1_REQUIRED)
        entry = _from_format_1(entry)
    elif version == FORMAT:
        _require(entry, REQUIRED)
    else:
        raise ValueError(f"ledger format {version!r}, which this chaoslab (format {FORMAT}) cannot read: heal it "
                         f"with the chaoslab that wrote it, or undo it by hand and delete the file")
    if entry["state"] not in STATES:
        raise ValueError(f"field 'state' is {entry['state']!r}, not one of {', '.join(STATES)}")
    if f"{entry['id']}.json" != path.name:
        raise ValueError(f"its id {entry['id']!r} does not match the file name")
    return dict(entry)


def _require(entry: dict[str, Any], fields: dict[str, type]) -> None:
    for field, kind in fields.items():
        if field not in entry:
            raise ValueError(f"missing the field {field!r}")
        if not isinstance(entry[field], kind):
            raise ValueError(f"field {field!r} is {type(entry[field]).__name__}, not {kind.__name__}")


def _from_format_1(entry: dict[str, Any]) -> dict[str, Any]:
    fault = FORMAT_1_FAULTS.get(entry["kind"])
    if fault is None:
        raise ValueError(f"ledger format 1 names the fault kind {entry['kind']!r}, which no class of this chaoslab "
                         f"heals: undo it by hand, then delete the file")
    upgraded = {k: v for k, v in entry.items() if k != "undo"}
    return {**upgraded, "format": FORMAT, "fault": fault, "heal_data": entry["undo"]}


class FaultLedger:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, fault_id: str) -> Path:
        return self.directory / f"{fault_id}.json"

    def _write(self, entry: dict[str, Any]) -> None:
        private_dir(self.directory)
        write_private(self._path(entry["id"]), json.dumps(entry, sort_keys=True).encode())

    def open(self, fault: str, kind: str, key: str, heal_data: dict[str, Any],
             fault_file: str | None = None) -> dict[str, Any]:
        """Record a fault about to be injected: ``fault`` is the ``module:QualName`` of the class that heals it.

        Refuses a second active fault with the same key, and any fault while an
        unreadable entry (which may be that same fault, still in force) is in the ledger.
        """
        entries, bad = self.read()
        if bad:
            raise FaultError(f"{bad[0]}; fix or remove it (see `python -m lab heal`) before injecting {key!r}")
        for entry in entries:
            if entry["state"] != HEALED and entry["key"] == key:
                raise FaultError(f"fault {key!r} is already injected (ledger entry {entry['id']}); heal it first "
                                 f"(`python -m lab heal`)")
        entry = {"format": FORMAT, "id": f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}", "fault": fault,
                 "kind": kind, "key": key, "heal_data": heal_data, "state": INJECTING, "injected_at": time.time(),
                 "healed_at": None}
        if fault_file:
            entry["fault_file"] = fault_file
        self._write(entry)
        return entry

    def update(self, entry: dict[str, Any], **changes: Any) -> None:
        entry.update(changes)
        self._write(entry)

    def mark_active(self, entry: dict[str, Any], **learned: Any) -> None:
        entry["heal_data"].update(learned)
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
