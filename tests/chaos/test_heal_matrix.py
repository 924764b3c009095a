"""Faults always heal: normal exit, failing check, exception, Ctrl-C, SIGTERM, and SIGKILL + `lab heal`.

The run is a real `python -m lab run` subprocess injecting a toxic, a partition,
a pause, a lowered server fd limit and a memory limit at once. After it ends, the
system itself is inspected: the proxies, the backend's view of its components, the
Postgres server's fd limit (read as its owner) and the memory limit the kernel
enforces on it. Runs on whichever backend the chaos stack uses.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.config import Settings
from lab.proxy.client import ToxiproxyClient
from lab.stack import limits
from lab.stack.backend import running

from ..labenv import ROOT

pytestmark = pytest.mark.chaos
SCENARIO_DIR = Path(__file__).parent / "heal_scenarios"


def snapshot(stack) -> dict:
    backend = running(Settings.from_env(stack.env))
    components = backend.status()["components"]
    postgres = backend.main_process("postgres").pid
    proxies = asyncio.run(ToxiproxyClient(stack.proxy_url).proxies())
    return {
        "toxics": {name: [t.name for t in proxy.toxics] for name, proxy in proxies.items()},
        "enabled": {name: proxy.enabled for name, proxy in proxies.items()},
        "kafka_paused": components["kafka"]["paused"],
        "pg_nofile": limits.nofile(postgres),
        "pg_memory_limit": limits.memory_limit_bytes(postgres),
        "problems": backend.problems(),
        "unhealed": [e["key"] for e in _ledger(stack)],
    }


def _ledger(stack) -> list[dict]:
    directory = stack.state_dir / "ledger"
    entries = [json.loads(f.read_text()) for f in directory.glob("*.json")] if directory.exists() else []
    return [e for e in entries if e["state"] != "healed"]


def start_run(stack, mode: str, fault_s: float = 2.0) -> subprocess.Popen:
    env = {**stack.env, "LAB_SCENARIO_PATH": str(SCENARIO_DIR), "HEAL_MODE": mode, "HEAL_FAULT_S": str(fault_s)}
    # as typed at a terminal: SIGINT at its default (a shell's background job, as CI may be, ignores it,
    # and a Python started so keeps ignoring it, which is not the Ctrl-C this file is about)
    return subprocess.Popen([sys.executable, "-m", "lab", "run", "every_fault"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_faults(proc: subprocess.Popen, stack, count: int = 5, timeout: float = 30,
                    states: tuple[str, ...] = ("active",)) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([e for e in _ledger(stack) if e["state"] in states]) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the faults were never all injected")


@pytest.fixture
def baseline(chaos_stack):
    before = snapshot(chaos_stack)
    assert before["unhealed"] == [] and not before["kafka_paused"] and before["problems"] == []
    yield before
    chaos_stack.run("heal", check=False)


def assert_restored(stack, before: dict) -> None:
    after = snapshot(stack)
    assert after["toxics"] == {name: [] for name in before["toxics"]}
    assert all(after["enabled"].values()), after["enabled"]
    assert not after["kafka_paused"]
    assert after["pg_nofile"] == before["pg_nofile"]
    # docker cannot lift a limit: "none" comes back as the host's RAM
    assert after["pg_memory_limit"] >= min(before["pg_memory_limit"], limits.host_memory_bytes())
    assert after["problems"] == []
    assert after["unhealed"] == []


@pytest.mark.parametrize("mode, expected_exit", [("pass", 0), ("fail", 1), ("raise", 3)])
def test_run_ending_by_itself_heals(chaos_stack, baseline, mode, expected_exit):
    proc = start_run(chaos_stack, mode)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == expected_exit, out + err
    if mode == "raise":
        assert "a scenario bug, mid-injection" in out
    assert_restored(chaos_stack, baseline)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_heals(chaos_stack, baseline, sig):
    proc = start_run(chaos_stack, "pass", fault_s=30)
    wait_for_faults(proc, chaos_stack)
    during = snapshot(chaos_stack)
    assert during["kafka_paused"] and during["enabled"]["postgres"] is False
    assert during["pg_nofile"][0] == 64 and during["pg_memory_limit"] == 512 * 1024 * 1024
    assert during["problems"], "the backend must see the paused and capped components"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "faults healed" in err
    assert_restored(chaos_stack, baseline)


def test_killed_run_is_healed_by_lab_heal_twice(chaos_stack, baseline):
    proc = start_run(chaos_stack, "pass", fault_s=30)
    wait_for_faults(proc, chaos_stack)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    left = snapshot(chaos_stack)
    assert left["kafka_paused"] and left["enabled"]["postgres"] is False and len(left["unhealed"]) == 5
    first = chaos_stack.run("heal")
    assert "ledger: 5 faults healed" in first.stdout
    assert_restored(chaos_stack, baseline)
    second = chaos_stack.run("heal")
    assert "ledger: 0 faults healed" in second.stdout
    assert_restored(chaos_stack, baseline)


KINDS = ["toxic", "protocol_toxic", "partition", "flapping", "pause", "kill", "crash", "fd_limit", "flood",
         "client_fd_limit", "memory_limit", "memory_trigger", "memory_hog", "user_fault", "connection_blackhole"]


def _class_of(kind: str) -> str:
    return {"toxic": "ToxicFault", "protocol_toxic": "ToxicFault", "partition": "Partition",
            "flapping": "Flapping", "pause": "Pause", "kill": "KillRestart", "crash": "CrashBackend",
            "fd_limit": "ServerFdLimit", "flood": "ConnectionFlood", "client_fd_limit": "ClientFdLimit",
            "memory_limit": "MemoryLimit", "memory_trigger": "MemoryTrigger", "memory_hog": "MemoryHog",
            "user_fault": "UserToxic", "connection_blackhole": "ConnectionBlackhole"}[kind]


def pg_sessions(stack, application: str) -> int:
    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(Settings.from_env(stack.env).pg_direct_dsn, timeout=10)
        try:
            return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                                       application)
        finally:
            await conn.close(timeout=5)

    return asyncio.run(count())


@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_kind_killed_mid_fault_is_healed_by_its_own_class(chaos_stack, baseline, kind):
    """SIGKILL the run while the fault is in force, then `lab heal --ledger-only` without LAB_SCENARIO_PATH: no
    global sweep of proxies or pauses and no scenario imported, so only the heal_from of the class the ledger
    entry names can restore the stack."""
    from lab.faults.fd import FLOOD_APPLICATION
    from lab.faults.memory import MemoryTrigger

    if kind == "connection_blackhole" and shutil.which("nft") is None:
        pytest.skip("ConnectionBlackhole needs nft")
    if kind == "protocol_toxic":
        flavour = running(Settings.from_env(chaos_stack.env)).proxy_flavour()
        if flavour != "lab.proxy":
            pytest.skip(f"protocol-aware toxics are lab.proxy's own; this stack's proxy is {flavour}")

    env = {**chaos_stack.env, "LAB_SCENARIO_PATH": str(SCENARIO_DIR), "HEAL_FAULT": kind, "HEAL_FAULT_S": "60"}
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", "one_fault"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the client's own fd limit leaves its process unable to mark the entry active; the hungry query
        # alone (no memory limit) never bites, so that entry stays "injecting" too: killed mid-injection
        states = ("injecting", "active") if kind in ("client_fd_limit", "memory_trigger") else ("active",)
        wait_for_faults(proc, chaos_stack, count=1, timeout=90, states=states)
        time.sleep(0.5)  # in force for a moment (a flapping proxy flips, a hog allocates)
        entry = _ledger(chaos_stack)[0]
        hog = entry["heal_data"]["process"] if entry["kind"] == "memory_hog" else None
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert entry["format"] == 2 and entry["fault"].endswith(f":{_class_of(kind)}"), entry
    healed = chaos_stack.run("heal", "--ledger-only", timeout=180)
    assert "ledger: 1 fault healed" in healed.stdout, healed.stdout + healed.stderr
    assert_restored(chaos_stack, baseline)
    assert pg_sessions(chaos_stack, FLOOD_APPLICATION) == 0
    assert pg_sessions(chaos_stack, MemoryTrigger.APPLICATION) == 0
    if kind == "connection_blackhole":  # its nftables table, named in the ledger, is gone
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10).stdout
        assert entry["heal_data"]["table"] not in tables, tables
    if hog is not None:
        from lab.stack.procs import ProcessRecord, is_ours

        assert not is_ours(ProcessRecord.from_json(hog)), "the memory hog outlived its heal"


def _leave_format_1_fault(stack, kind: str) -> dict:
    """Put a fault in force and write its entry exactly as chaoslab's ledger format 1 did (kind + undo data,
    no format, no class), as a run killed before the upgrade would have left it."""
    settings = Settings.from_env(stack.env)
    if kind == "partition":
        asyncio.run(ToxiproxyClient(stack.proxy_url).disable("postgres"))
        key, undo = "partition:postgres", {"api": stack.proxy_url, "proxy": "postgres"}
    else:
        running(settings).pause("kafka")
        key, undo = "pause:kafka", {"component": "kafka", "settings": settings.to_env()}
    entry = {"id": f"1-format1{kind}", "kind": kind, "key": key, "undo": undo, "state": "active",
             "injected_at": time.time(), "healed_at": None}
    directory = stack.state_dir / "ledger"
    directory.mkdir(mode=0o700, exist_ok=True)
    (directory / f"{entry['id']}.json").write_text(json.dumps(entry))
    return entry


@pytest.mark.parametrize("kind", ["partition", "pause"])
def test_a_format_1_entry_left_before_the_upgrade_is_healed_by_its_class(chaos_stack, baseline, kind):
    entry = _leave_format_1_fault(chaos_stack, kind)
    left = snapshot(chaos_stack)
    assert left["kafka_paused"] or left["enabled"]["postgres"] is False
    healed = chaos_stack.run("heal", "--ledger-only")
    assert f"ledger: 1 fault healed ({entry['key']})" in healed.stdout, healed.stdout + healed.stderr
    assert_restored(chaos_stack, baseline)
    rewritten = json.loads((chaos_stack.state_dir / "ledger" / f"{entry['id']}.json").read_text())
    assert rewritten["format"] == 2 and rewritten["state"] == "healed"
