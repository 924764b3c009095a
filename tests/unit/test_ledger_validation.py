"""The fault ledger on bad entries: validated on read, every good entry healed, every bad one reported."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest

from lab.faults import Fault, FaultError, FaultLedger, heal_ledger
from lab.faults.ledger import ACTIVE

pytestmark = [pytest.mark.unit, pytest.mark.security]

HEALED_WITH: list[dict] = []  # what Recording.heal_from was asked to heal (reset by the fixture)


class Recording(Fault):
    """A fault class whose heal records the data it was given."""

    kind = "test_kind"

    @classmethod
    async def heal_from(cls, data: dict) -> None:
        HEALED_WITH.append(data)


@pytest.fixture
def undone():
    HEALED_WITH.clear()
    yield HEALED_WITH
    HEALED_WITH.clear()


def _entry(fault_id: str, **fields) -> dict:
    entry = {"format": 2, "id": fault_id, "fault": f"{__name__}:Recording", "kind": "test_kind",
             "key": f"key-{fault_id}", "heal_data": {"n": fault_id}, "state": ACTIVE, "injected_at": 1.0,
             "healed_at": None}
    entry.update(fields)
    return {k: v for k, v in entry.items() if v is not ...}


def _write(ledger: FaultLedger, name: str, content: object) -> None:
    ledger.directory.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (ledger.directory / name).write_text(text)


def test_heal_heals_every_good_entry_and_reports_the_one_missing_a_field(tmp_path, undone):
    ledger = FaultLedger(tmp_path / "ledger")
    _write(ledger, "1-a.json", _entry("1-a"))
    _write(ledger, "2-b.json", _entry("2-b", key=...))  # the entry missing a field sorts between the good ones
    _write(ledger, "3-c.json", _entry("3-c"))
    with pytest.raises(FaultError) as raised:
        asyncio.run(heal_ledger(ledger))
    assert [c["n"] for c in undone] == ["1-a", "3-c"]
    message = str(raised.value)
    assert "2-b.json" in message and "'key'" in message and "healed 2" in message
    states = {p.name: json.loads(p.read_text())["state"] for p in ledger.directory.glob("*.json")}
    assert states["1-a.json"] == states["3-c.json"] == "healed"


def test_an_unparseable_entry_is_reported_not_skipped(tmp_path, undone):
    ledger = FaultLedger(tmp_path / "ledger")
    _write(ledger, "1-a.json", '{"id": "1-a", "kind": "test_kind", "key": "k", "und')
    _write(ledger, "2-b.json", _entry("2-b"))
    with pytest.raises(FaultError, match=r"1-a\.json.*not valid JSON"):
        asyncio.run(heal_ledger(ledger))
    assert [c["n"] for c in undone] == ["2-b"]
    assert (ledger.directory / "1-a.json").exists()  # kept for a person to look at


def test_a_second_heal_after_fixing_the_bad_entry_is_clean(tmp_path, undone):
    ledger = FaultLedger(tmp_path / "ledger")
    _write(ledger, "1-a.json", "{")
    with pytest.raises(FaultError):
        asyncio.run(heal_ledger(ledger))
    (ledger.directory / "1-a.json").unlink()
    assert asyncio.run(heal_ledger(ledger)) == []


def test_opening_a_fault_refuses_while_an_unreadable_entry_may_hold_its_key(tmp_path):
    """A truncated entry could be the same fault, still in force: injecting again would stack them."""
    ledger = FaultLedger(tmp_path / "ledger")
    _write(ledger, "1-a.json", "{")
    with pytest.raises(FaultError, match=r"1-a\.json"):
        ledger.open(f"{__name__}:Recording", "test_kind", "k", {})


def test_entries_are_written_private_and_whole(tmp_path):
    ledger = FaultLedger(tmp_path / "ledger")
    entry = ledger.open(f"{__name__}:Recording", "test_kind", "k", {"x": 1})
    ledger.mark_active(entry)
    path = ledger.directory / f"{entry['id']}.json"
    assert stat.S_IMODE(ledger.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["state"] == ACTIVE
    assert [p.name for p in ledger.directory.iterdir()] == [path.name]  # no temp file left behind
