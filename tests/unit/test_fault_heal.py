"""Each fault kind heals itself: the ledger names the class, `lab heal` imports it and calls its heal_from.

No registry: a class never imported before the heal is found from its import path alone (or from the
file the entry records); old-format (1) entries still heal; entries that cannot be healed say why.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from lab.config import Settings
from lab.faults import Fault, FaultError, FaultLedger, heal_ledger
from lab.faults.base import class_path
from lab.faults.heal import fault_class
from lab.faults.ledger import FORMAT_1_FAULTS, validate
from lab.faults.network import Flapping, Partition, ToxicFault, bandwidth, latency
from lab.faults.protocol import KafkaResponseFault, PgStatementFault
from lab.scenario import ClientProfile, FaultContext

pytestmark = pytest.mark.unit

PROBE = '''
    from pathlib import Path

    from lab.faults import Fault


    class Probe(Fault):
        kind = "probe"

        @classmethod
        async def heal_from(cls, data):
            Path(data["out"]).write_text("healed by " + cls.__qualname__)
'''


def _write(ledger: FaultLedger, entry: dict) -> Path:
    ledger.directory.mkdir(parents=True, exist_ok=True)
    path = ledger.directory / f"{entry['id']}.json"
    path.write_text(json.dumps(entry))
    return path


def _entry(fault: str, data: dict, **extra) -> dict:
    return {"format": 2, "id": "1-a", "fault": fault, "kind": "probe", "key": "probe:1", "heal_data": data,
            "state": "active", "injected_at": 1.0, "healed_at": None, **extra}


def test_a_class_never_imported_is_found_by_its_import_path_alone(tmp_path, monkeypatch):
    (tmp_path / "probe_faults_by_name.py").write_text(textwrap.dedent(PROBE))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "probe_faults_by_name" not in sys.modules
    ledger = FaultLedger(tmp_path / "ledger")
    out = tmp_path / "out"
    _write(ledger, _entry("probe_faults_by_name:Probe", {"out": str(out)}))
    try:
        assert asyncio.run(heal_ledger(ledger)) == ["probe:1"]
    finally:
        sys.modules.pop("probe_faults_by_name", None)
    assert out.read_text() == "healed by Probe"
    assert asyncio.run(heal_ledger(ledger)) == []  # healed once, marked healed


def test_a_class_whose_module_is_not_importable_is_loaded_from_the_recorded_file(tmp_path):
    """A user scenario's fault class (module lab_user_scenarios.x, loaded from LAB_SCENARIO_PATH)."""
    source = tmp_path / "user_faults.py"
    source.write_text(textwrap.dedent(PROBE))
    ledger = FaultLedger(tmp_path / "ledger")
    out = tmp_path / "out"
    _write(ledger, _entry("lab_user_scenarios_test.user_faults:Probe", {"out": str(out)}, fault_file=str(source)))
    try:
        assert asyncio.run(heal_ledger(ledger)) == ["probe:1"]
    finally:
        sys.modules.pop("lab_user_scenarios_test.user_faults", None)
    assert out.read_text() == "healed by Probe"


@pytest.mark.parametrize("fault, problem", [
    ("no_such_module_anywhere:Probe", "cannot be imported here"),
    ("lab.faults.network:NoSuchClass", "cannot be imported here"),
    ("lab.faults.network:latency", "not a Fault class"),
    ("lab.faults.network", "not module:Class"),
])
def test_an_entry_naming_no_fault_class_is_a_clear_error(tmp_path, fault, problem):
    ledger = FaultLedger(tmp_path / "ledger")
    _write(ledger, _entry(fault, {}))
    with pytest.raises(FaultError) as raised:
        asyncio.run(heal_ledger(ledger))
    assert problem in str(raised.value) and fault in str(raised.value) and "1-a" in str(raised.value)


def test_the_recorded_class_is_the_faults_own_and_heals_with_its_data(tmp_path):
    ledger = FaultLedger(tmp_path / "ledger")
    fault = Partition(ledger, "http://127.0.0.1:1", "postgres")
    entry = ledger.open(class_path(type(fault)), fault.kind, fault.key(), fault.heal_data())
    assert entry["fault"] == "lab.faults.network:Partition" and entry["format"] == 2
    assert fault_class(entry) is Partition
    assert fault_class({**entry, "fault": class_path(ToxicFault)}) is ToxicFault


# ---- format 1: what chaoslab wrote before each class held its heal --------------------------------------------

def _format_1(kind: str, undo: dict) -> dict:
    """Exactly the shape FaultLedger.open wrote in format 1."""
    return {"id": "1-a", "kind": kind, "key": f"{kind}:x", "undo": undo, "state": "active", "injected_at": 1.0,
            "healed_at": None}


#: every kind chaoslab wrote in format 1 (git show 560369a:lab/faults: the @undo_for registrations)
FORMAT_1_KINDS = ["client_fd_limit", "crash", "drop", "fd_limit", "flapping", "flood", "kill", "memory_hog",
                  "memory_limit", "memory_trigger", "partition", "pause", "toxic"]


def test_the_format_1_table_covers_every_kind_format_1_wrote():
    assert sorted(FORMAT_1_FAULTS) == FORMAT_1_KINDS


@pytest.mark.parametrize("kind", FORMAT_1_KINDS)
def test_every_format_1_kind_reads_as_the_class_that_heals_it(tmp_path, kind):
    path = tmp_path / "1-a.json"
    entry = validate(path, json.dumps(_format_1(kind, {"api": "http://127.0.0.1:1", "proxy": "postgres"})))
    assert entry["format"] == 2 and entry["heal_data"] == {"api": "http://127.0.0.1:1", "proxy": "postgres"}
    cls = fault_class(entry)
    assert cls.kind == kind or (kind, cls) == ("drop", Partition)
    assert cls.heal_from.__func__ is not Fault.heal_from.__func__


def test_a_format_1_entry_heals_and_is_rewritten_in_format_2(tmp_path):
    ledger = FaultLedger(tmp_path / "ledger")
    # a memory hog entry whose process is gone: its heal must run (and find nothing to kill)
    path = _write(ledger, _format_1("memory_hog", {"process": {"pid": 999999999, "start_ticks": 1, "argv0": "x"}}))
    assert asyncio.run(heal_ledger(ledger)) == ["memory_hog:x"]
    rewritten = json.loads(path.read_text())
    assert rewritten["state"] == "healed" and rewritten["format"] == 2
    assert rewritten["fault"] == "lab.faults.memory:MemoryHog" and "undo" not in rewritten


def test_a_format_1_kind_no_class_heals_is_reported_not_skipped(tmp_path):
    ledger = FaultLedger(tmp_path / "ledger")
    _write(ledger, _format_1("explodes", {}))
    with pytest.raises(FaultError, match=r"1-a\.json: ledger format 1 names the fault kind 'explodes'"):
        asyncio.run(heal_ledger(ledger))


def test_a_newer_format_is_reported_not_guessed(tmp_path):
    ledger = FaultLedger(tmp_path / "ledger")
    _write(ledger, {**_entry("lab.faults.network:Partition", {}), "format": 3})
    with pytest.raises(FaultError, match=r"ledger format 3, which this chaoslab \(format 2\) cannot read"):
        asyncio.run(heal_ledger(ledger))


# ---- the factories on the scenario context -------------------------------------------------------------------

def _ctx(tmp_path) -> FaultContext:
    return FaultContext(Settings(proxy_api_port=18474), FaultLedger(tmp_path / "ledger"), ClientProfile())


def test_factories_build_the_fault_classes_from_the_service_name(tmp_path):
    ctx = _ctx(tmp_path)
    toxic = ctx.toxic("postgres", latency(400))
    assert isinstance(toxic, ToxicFault) and toxic.proxy == "postgres" and toxic.ledger is ctx.ledger
    assert toxic.api_url == ctx.settings.proxy_url == "http://127.0.0.1:18474"
    protocol = ctx.toxic("kafka", KafkaResponseFault("REQUEST_TIMED_OUT"))
    assert isinstance(protocol, ToxicFault) and protocol.key() == "toxic:kafka:lab-kafka-upstream"
    assert protocol.heal_data()["type"] == "kafka" and protocol.heal_data()["direction"] == "upstream"
    assert ctx.toxic("postgres", PgStatementFault("x", "57P01")).heal_data()["attributes"]["sqlstate"] == "57P01"
    assert ctx.partition("kafka").key() == "partition:kafka"
    flapping = ctx.flapping("postgres", down_s=0.4, up_s=0.6)
    assert isinstance(flapping, Flapping) and (flapping.down_s, flapping.up_s) == (0.4, 0.6)
    assert ctx.connection_flood(drop_clients=True).drop_via == ctx.settings.proxy_url
    assert ctx.connection_flood().drop_via is None
    assert ctx.client_fd_limit(drop_clients=True).drop_via == ctx.settings.proxy_url


@pytest.mark.parametrize("build", [
    lambda ctx: ctx.partition("pg"),
    lambda ctx: ctx.toxic("proxy", bandwidth(1)),
    lambda ctx: ctx.flapping("Postgres", 1, 1),
    lambda ctx: ctx.pause("redis"),
])
def test_a_factory_refuses_an_unknown_service_by_name(tmp_path, build):
    with pytest.raises(FaultError, match=r"no service '.*': choose from postgres, kafka"):
        build(_ctx(tmp_path))


def test_a_toxic_needs_a_toxic_spec(tmp_path):
    with pytest.raises(FaultError, match="got dict"):
        _ctx(tmp_path).toxic("postgres", {"type": "latency"})  # type: ignore[arg-type]


def test_no_fault_heal_is_found_through_a_registry():
    """`grep -rn "UNDO\\|undo_for" lab` finds nothing: the heal of a fault is its class's own method."""
    root = Path(__file__).resolve().parents[2] / "lab"
    offenders = [str(p) for p in root.rglob("*.py") if "UNDO" in p.read_text() or "undo_for" in p.read_text()]
    assert offenders == []


def test_every_fault_class_in_lab_defines_or_inherits_a_heal():
    import lab.faults.fd, lab.faults.memory, lab.faults.network, lab.faults.process, lab.faults.protocol  # noqa

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    ours = [c for c in subclasses(Fault) if c.__module__.startswith("lab.") and "kind" in vars(c)]
    assert len(ours) >= 12  # the twelve kinds of format 1
    missing = [c.__qualname__ for c in ours if c.heal_from.__func__ is Fault.heal_from.__func__]
    assert missing == []
