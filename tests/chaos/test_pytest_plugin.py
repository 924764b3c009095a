"""The pytest plugin as a team uses it: their own test file, in a directory of its own, run by pytest with
only the installed plugin (no conftest). Against the running chaos stack: the resilient test passes, the
fragile one fails on the breaker assertion with its evidence, and the test that failed mid-fault leaves
no fault behind (healed at the chaos fixture's teardown)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from lab.faults import FaultLedger
from lab.proxy.client import ToxiproxyClient

from ..labenv import ROOT

pytestmark = pytest.mark.chaos


def test_a_teams_own_chaos_tests_run_with_the_plugin(chaos_stack, chaos_settings, tmp_path):
    shutil.copy(ROOT / "examples" / "pytest_plugin" / "test_orders_chaos.py", tmp_path)
    report = tmp_path / "report.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "asyncio",
                             "--asyncio-mode=auto", f"--junitxml={report}", "test_orders_chaos.py"],
                            cwd=tmp_path, env=chaos_stack.env, capture_output=True, text=True, timeout=180)
    cases = {case.get("name"): case for case in ElementTree.parse(report).getroot().iter("testcase")}
    output = result.stdout + result.stderr
    assert set(cases) == {"test_resilient_orders_cycle_their_breaker", "test_fragile_orders_fail_the_breaker_assertion",
                          "test_a_fault_left_in_force_is_healed_at_teardown"}, output
    assert cases["test_resilient_orders_cycle_their_breaker"].find("failure") is None, output
    fragile = cases["test_fragile_orders_fail_the_breaker_assertion"].find("failure")
    assert fragile is not None and "pg breaker never opened" in fragile.get("message", "") + (fragile.text or "")
    left = cases["test_a_fault_left_in_force_is_healed_at_teardown"].find("failure")
    assert left is not None and "kafka partition in force" in (left.text or "")
    proxies = asyncio.run(ToxiproxyClient(chaos_settings.proxy_url).proxies())
    assert all(p.enabled and not p.toxics for p in proxies.values()), proxies
    assert FaultLedger(chaos_settings.state_path / "ledger").unhealed() == []


def test_with_no_stack_running_the_session_brings_its_own_up_and_down(tmp_path):
    """No LAB_* stack up: ``lab_stack`` starts one on free ports in its own state dir, and stops it after."""
    (tmp_path / "test_stack.py").write_text(
        "import asyncio\n"
        "from lab.proxy.client import ToxiproxyClient\n"
        "def test_stack(lab_stack):\n"
        "    print('STATE', lab_stack.state_path)\n"
        "    assert 'postgres' in asyncio.run(ToxiproxyClient(lab_stack.proxy_url).proxies())\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("LAB_")}
    env["LAB_STATE_DIR"] = str(tmp_path / "no-stack-here")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                             f"--basetemp={tmp_path / 'base'}", "test_stack.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    state = next(line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("STATE "))
    assert not (tmp_path / "no-stack-here").exists() or not any((tmp_path / "no-stack-here").iterdir())
    from lab.config import Settings
    from lab.stack import state as state_file

    assert state_file.load(Settings.from_env({"LAB_STATE_DIR": state}).state_path) is None, "the stack was left up"
