"""Issue 13's acceptance: a service this package does not contain, from a directory of its own, with a venv that
holds only the chaoslab wheel, through each documented way in; the resilient service passes and the fragile one
fails, each with its evidence.

The service (own_service/kiosk.py: asyncpg behind a purgatory breaker, or bare) and its own plugin tests
(own_service/test_kiosk_chaos.py) are copied out of the repository; the lab runs as that venv's installed
package, its stack brought up by that venv's ``python -m lab up``. One scenario per way in (postgres_restart for
the Python target, blackhole for the HTTP target, a partition in the plugin tests) keeps this inside make test's
budget; every scenario against both kinds of target ran by hand (README, "Test your own service").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Iterator

import pytest

from ..labenv import LabEnv, free_ports

pytestmark = pytest.mark.e2e
SERVICE = Path(__file__).parent / "own_service"


class Outside:
    """The user's side: their venv's python, their service's directory, a working directory of their own."""

    def __init__(self, python: Path, service: Path, workdir: Path, stack: LabEnv) -> None:
        self.python, self.service, self.workdir, self.stack = python, service, workdir, stack
        self.env = {k: v for k, v in stack.env.items() if k != "PYTHONPATH"}

    def lab(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.python), "-m", "lab", *args], cwd=self.workdir,
                              env={**self.env, "PYTHONPATH": str(self.service)}, capture_output=True, text=True,
                              timeout=timeout)


@pytest.fixture(scope="module")
def outside(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outside]:
    root = tmp_path_factory.mktemp("user")
    service, workdir = root / "kiosk", root / "work"
    shutil.copytree(SERVICE, service, ignore=shutil.ignore_patterns("__pycache__"))
    workdir.mkdir()
    user = Outside(installed, service, workdir, LabEnv(root / "state"))
    up = user.lab("up", "--backend", "local")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield user
    finally:
        user.lab("down", "--purge")
    assert os.listdir(workdir) == [], "the lab wrote into the user's working directory"


def _journal(user: Outside, scenario: str, target: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    journal = user.workdir.parent / f"{scenario}-{target.replace('/', '_').replace(':', '_')}.json"
    result = user.lab("run", scenario, "--target", target, "--json", str(journal))
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert journal.exists(), output
    (run,) = json.loads(journal.read_text())["scenarios"]
    return result.returncode, {v["check"]: (v["result"], v["evidence"]) for v in run["verdicts"]}, output


def test_a_python_target_resilient_passes_fragile_fails(outside: Outside) -> None:
    code, verdicts, output = _journal(outside, "postgres_restart", "kiosk:resilient")
    assert code == 0, output
    assert verdicts["pg: HALF_OPEN after the wait"][0] == "pass"
    assert "purgatory" in verdicts["pg: CLOSED after the heal"][1]  # observed on the service's own breaker
    assert verdicts["pg: pool recovered, no leaked sessions"][0] == "pass"
    code, verdicts, output = _journal(outside, "postgres_restart", "kiosk:fragile")
    assert code == 1, output
    assert verdicts["pg: breaker opens when its window reaches a threshold"][0] != "pass", verdicts


@pytest.mark.parametrize("kind", ["resilient", "fragile"])
def test_an_http_target_under_locust_resilient_passes_fragile_fails(outside: Outside, kind: str) -> None:
    (port,) = free_ports(1)
    dsn = outside.stack.pg_dsn
    service = subprocess.Popen([str(outside.python), "kiosk.py", str(port), dsn]
                               + (["--fragile"] if kind == "fragile" else []), cwd=outside.service,
                               env=outside.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert service.stdout is not None
        assert "listening" in service.stdout.readline()  # once its pool is up (bounded by its connect)
        code, verdicts, output = _journal(outside, "blackhole", f"http://127.0.0.1:{port}/stock")
    finally:
        service.terminate()
        service.wait(10)
    fast = verdicts["http: fails fast during the fault"]
    if kind == "resilient":
        assert code == 0, output
        assert fast[0] == "pass" and "none waited out the client timeout" in fast[1], fast
    else:
        assert code == 1, output
        assert fast[0] == "fail", fast


def test_the_services_own_plugin_tests_resilient_passes_fragile_fails(outside: Outside) -> None:
    report = outside.workdir.parent / "plugin.xml"
    result = subprocess.run([str(outside.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "asyncio",
                             "--asyncio-mode=auto", f"--junitxml={report}", "test_kiosk_chaos.py"],
                            cwd=outside.service, env=outside.env, capture_output=True, text=True, timeout=180)
    output = result.stdout[-3000:] + result.stderr[-3000:]
    cases = {case.get("name"): case for case in ElementTree.parse(report).getroot().iter("testcase")}
    assert set(cases) == {"test_resilient_kiosk_cycles_its_breaker",
                          "test_fragile_kiosk_fails_the_breaker_assertion"}, output
    assert cases["test_resilient_kiosk_cycles_its_breaker"].find("failure") is None, output
    fragile = cases["test_fragile_kiosk_fails_the_breaker_assertion"].find("failure")
    assert fragile is not None and "pg breaker never opened" in fragile.get("message", "") + (fragile.text or "")
    # the plugin that ran is the wheel's: the repository is nowhere on that venv's path
    plugin = subprocess.run([str(outside.python), "-c", "import lab.testing.plugin as p; print(p.__file__)"],
                            cwd=outside.service, env=outside.env, capture_output=True, text=True, timeout=60)
    assert "site-packages" in plugin.stdout and "/tests/" not in plugin.stdout, plugin.stdout + plugin.stderr
