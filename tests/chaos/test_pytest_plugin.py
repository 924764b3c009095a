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
