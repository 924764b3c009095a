"""Faults always heal: normal exit, failing check, exception, Ctrl-C, SIGTERM, and SIGKILL + `lab heal`.

The run is a real `python -m lab run` subprocess injecting a toxic, a partition,
a SIGSTOP, a lowered server fd limit and a cgroup memory limit at once. After it
ends, the system itself is inspected: the proxies, the process state, the
Postgres process's fd limit (read as its owner) and its memory cgroup.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.faults.fd import _prlimit_as_owner
from lab.faults.memory import cgroup_of
from lab.proxy.client import ToxiproxyClient
from lab.stack import procs

from ..labenv import ROOT

pytestmark = pytest.mark.chaos
SCENARIO_DIR = Path(__file__).parent / "heal_scenarios"


def pids(stack) -> dict[str, int]:
    return {name: c["pid"] for name, c in stack.status()["components"].items()}


def snapshot(stack) -> dict:
    p = pids(stack)
    proxies = asyncio.run(ToxiproxyClient(stack.proxy_url).proxies())
    return {
        "toxics": {name: [t.name for t in proxy.toxics] for name, proxy in proxies.items()},
        "enabled": {name: proxy.enabled for name, proxy in proxies.items()},
        "kafka_state": procs.state_letter(p["kafka"]),
        "pg_nofile": _prlimit_as_owner(p["postgres"]),
        "pg_cgroup": str(cgroup_of(p["postgres"])[1]),
        "unhealed": [e["key"] for e in _ledger(stack)],
    }


def _ledger(stack) -> list[dict]:
    directory = stack.state_dir / "ledger"
    entries = [json.loads(f.read_text()) for f in directory.glob("*.json")] if directory.exists() else []
    return [e for e in entries if e["state"] != "healed"]


def start_run(stack, mode: str, fault_s: float = 2.0) -> subprocess.Popen:
    env = {**stack.env, "LAB_SCENARIO_PATH": str(SCENARIO_DIR), "HEAL_MODE": mode, "HEAL_FAULT_S": str(fault_s)}
    return subprocess.Popen([sys.executable, "-m", "lab", "run", "every_fault"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_faults(proc: subprocess.Popen, stack, count: int = 5, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([e for e in _ledger(stack) if e["state"] == "active"]) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the faults were never all injected")


@pytest.fixture
def baseline(chaos_stack):
    before = snapshot(chaos_stack)
    assert before["unhealed"] == [] and before["kafka_state"] != "T"
    yield before
    chaos_stack.run("heal", check=False)


def assert_restored(stack, before: dict) -> None:
    after = snapshot(stack)
    assert after["toxics"] == {name: [] for name in before["toxics"]}
    assert all(after["enabled"].values()), after["enabled"]
    assert after["kafka_state"] != "T"
    assert after["pg_nofile"] == before["pg_nofile"]
    assert after["pg_cgroup"] == before["pg_cgroup"]
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
    assert during["kafka_state"] == "T" and during["enabled"]["postgres"] is False
    assert during["pg_nofile"][0] == 64 and during["pg_cgroup"] != baseline["pg_cgroup"]
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
    assert left["kafka_state"] == "T" and left["enabled"]["postgres"] is False and len(left["unhealed"]) == 5
    first = chaos_stack.run("heal")
    assert "ledger: 5 faults healed" in first.stdout
    assert_restored(chaos_stack, baseline)
    second = chaos_stack.run("heal")
    assert "ledger: 0 faults healed" in second.stdout
    assert_restored(chaos_stack, baseline)
