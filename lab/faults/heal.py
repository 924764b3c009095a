"""Healing from the ledger alone: import the class an entry names and call its ``heal_from``.

Nothing is registered at import time: the entry itself says which class heals it
(``module:QualName``), so ``python -m lab heal`` needs no scenario and no fault module
imported beforehand. A class defined in a module that is not importable by name
(a user scenario loaded from ``LAB_SCENARIO_PATH``) is loaded from the file the entry
also records.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from typing import Any

from ..errors import FaultError
from .base import HEAL_TIMEOUT_S, Fault
from .ledger import FaultLedger

__all__ = ["fault_class", "heal_entry", "heal_ledger"]


def _module(name: str, file: str | None) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        if not file:
            raise
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module {name!r} and {file} cannot be loaded", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def fault_class(entry: dict[str, Any]) -> type[Fault]:
    """The Fault subclass that heals ``entry``; FaultError naming the entry and the class if there is none."""
    path = entry["fault"]
    where = f"ledger entry {entry['id']} (fault {entry['key']!r})"
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise FaultError(f"{where} names the class {path!r}, not module:Class")
    try:
        found: Any = _module(module_name, entry.get("fault_file"))
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as err:
        raise FaultError(f"{where} is healed by {path}, which cannot be imported here "
                         f"({type(err).__name__}: {err}); undo it by hand, then run `python -m lab heal`") from err
    if not (isinstance(found, type) and issubclass(found, Fault)):
        raise FaultError(f"{where} names {path}, which is not a Fault class")
    return found


async def heal_entry(entry: dict[str, Any]) -> None:
    """Run the heal of the entry's class on the entry's data, bounded by HEAL_TIMEOUT_S."""
    await asyncio.wait_for(fault_class(entry).heal_from(entry["heal_data"]), HEAL_TIMEOUT_S)


async def heal_ledger(ledger: FaultLedger) -> list[str]:
    """Heal every unhealed fault in the ledger; returns their keys. Safe to run twice.

    Every good entry is healed even when others fail or cannot be read; then
    one FaultError names each failure and each bad entry (by file and problem).
    """
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
