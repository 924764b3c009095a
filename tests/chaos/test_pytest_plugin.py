"""The pytest plugin as a team uses it: their own test file, in a directory of its own, run by pytest with
only the installed plugin (no conftest). Against the running chaos stack: the resilient test passes, the
fragile one fails on the breaker assertion with its evidence, and the test that failed mid-fault leaves
no fault behind (healed at the chaos fixture's teardown)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
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


TWO_SESSIONS = '''
import asyncio, os, pathlib, time
from lab.proxy.client import ToxiproxyClient


async def test_a_fault_of_my_own(lab_stack, chaos):
    me, other = os.environ["SESSION"], os.environ["OTHER"]
    meeting = pathlib.Path(os.environ["MEETING"])
    (meeting / f"{me}.ready").write_text(str(lab_stack.state_path))
    deadline = time.monotonic() + 240
    while not (meeting / f"{other}.ready").exists():  # both sessions hold a stack before either injects
        assert time.monotonic() < deadline, "the other session never got a stack"
        await asyncio.sleep(0.05)
    if me == "b":
        await asyncio.sleep(1.0)  # b's fault starts while a's is in force and outlives a's heal
    client = ToxiproxyClient(lab_stack.proxy_url)
    async with chaos.partition("postgres"):
        for _ in range(30):
            assert (await client.proxies())["postgres"].enabled is False, "my partition was healed under me"
            await asyncio.sleep(0.1)
    assert (await client.proxies())["postgres"].enabled
'''


def _pytest(directory, env, *args):
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "asyncio",
                             "--asyncio-mode=auto", f"--basetemp={directory / 'base'}", *args], cwd=directory,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _two_sessions(tmp_path, env, script: str = TWO_SESSIONS) -> set[str]:
    """Two pytest sessions at once running ``script`` (by default: each holding a partition for 3 s, b's starting
    1 s into a's); both must pass (neither fault healed under its test by the other). What each wrote to its
    ready file (by default the state dir of the stack it used)."""
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    sessions = {}
    for me, other in (("a", "b"), ("b", "a")):
        directory = tmp_path / me
        directory.mkdir()
        (directory / "test_mine.py").write_text(script)
        sessions[me] = _pytest(directory, {**env, "SESSION": me, "OTHER": other, "MEETING": str(meeting)},
                               "test_mine.py")
    outputs = {me: process.communicate(timeout=400)[0] for me, process in sessions.items()}
    assert all(process.returncode == 0 for process in sessions.values()), outputs
    return {(meeting / f"{me}.ready").read_text() for me in sessions}


def test_two_sessions_at_once_never_share_a_stack(chaos_stack, chaos_settings, tmp_path):
    """Both pointed at the same running stack: the first to come holds it (its pytest.lock), the other brings up
    one of its own."""
    stacks = _two_sessions(tmp_path, chaos_stack.env)
    assert len(stacks) == 2 and str(chaos_settings.state_path) in stacks, stacks
    proxies = asyncio.run(ToxiproxyClient(chaos_settings.proxy_url).proxies())
    assert all(p.enabled and not p.toxics for p in proxies.values()), proxies


def test_two_sessions_with_no_stack_running_each_bring_their_own(tmp_path):
    """No stack up: both sessions bring one up at the same time (own state dirs, free ports) and down after."""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("LAB_")}
    env["LAB_STATE_DIR"] = str(tmp_path / "no-stack-here")
    stacks = _two_sessions(tmp_path, env)
    assert len(stacks) == 2 and env["LAB_STATE_DIR"] not in stacks, stacks
    from lab.config import Settings
    from lab.stack import state as state_file

    for stack in stacks:
        assert state_file.load(Settings.from_env({"LAB_STATE_DIR": stack}).state_path) is None, "left up"


INTERRUPTED = '''
import asyncio, os, pathlib


async def test_interrupted_mid_fault(lab_stack, chaos):
    await chaos.latency("kafka", latency_ms=2000).__aenter__()  # never left: only the fixture's teardown heals it
    async with chaos.partition("postgres"):  # left as Ctrl-C unwinds the test (pytest-asyncio cancels it)
        pathlib.Path(os.environ["IN_FORCE"]).write_text("yes")
        await asyncio.sleep(120)
'''


def test_ctrl_c_mid_fault_heals_at_teardown(chaos_stack, chaos_settings, tmp_path):
    """SIGINT (Ctrl-C at a terminal) to a pytest session while its test holds a partition (in ``async with``) and a
    latency toxic (entered by hand, never left): the session ends interrupted, and the proxy is left with every
    proxy enabled and no toxic, the toxic healed by the ``chaos`` fixture's teardown."""
    (tmp_path / "test_interrupted.py").write_text(INTERRUPTED)
    in_force = tmp_path / "in-force"
    process = _pytest(tmp_path, {**chaos_stack.env, "IN_FORCE": str(in_force)}, "test_interrupted.py")
    try:
        deadline = time.monotonic() + 120
        while not in_force.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate(timeout=10)[0]
            time.sleep(0.05)
        client = ToxiproxyClient(chaos_settings.proxy_url)
        during = asyncio.run(client.proxies())
        assert not during["postgres"].enabled and during["kafka"].toxics, during  # the faults were in force
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=150)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 2 and "KeyboardInterrupt" in output, output  # pytest's "interrupted"
    after = asyncio.run(client.proxies())
    assert all(p.enabled and not p.toxics for p in after.values()), (after, output)
    assert FaultLedger(chaos_settings.state_path / "ledger").unhealed() == []
