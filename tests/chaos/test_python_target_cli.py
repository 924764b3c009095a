"""A service this repository does not contain, put under a scenario through ``--target module:attr``.

examples/python_target/shop_chaos.py is copied into a directory of its own and run from there (the
lab as an installed package, the service on that directory's path): the resilient orders service (asyncpg
and aiokafka) PASSES network_partition, which cuts both, with evidence from its own two aiobreakers and its
own read-back of the events the broker acknowledged, and the fragile one (no breakers, no timeouts) FAILS,
the negative control for user services. (postgres_restart against a service of our own is in
tests/e2e/test_own_service.py.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ..labenv import ROOT

pytestmark = pytest.mark.chaos


def _run(chaos_stack, workdir, target: str) -> tuple[int, dict]:
    journal = workdir / f"{target}.json"
    result = subprocess.run([sys.executable, "-m", "lab", "run", "network_partition", "--target",
                             f"shop_chaos:{target}", "--json", str(journal)], cwd=workdir,
                            env={**chaos_stack.env, "PYTHONPATH": str(workdir)}, capture_output=True, text=True,
                            timeout=120)
    assert journal.exists(), result.stdout + result.stderr
    return result.returncode, json.loads(journal.read_text())


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "examples" / "python_target" / "shop_chaos.py", tmp_path)
    return tmp_path


def _details(journal: dict) -> dict[str, tuple[str, str]]:
    (scenario,) = journal["scenarios"]
    return {v["check"]: (v["result"], v["evidence"]) for v in scenario["verdicts"]}


def _verdicts(journal: dict) -> dict[str, str]:
    (scenario,) = journal["scenarios"]
    return {v["check"]: v["result"] for v in scenario["verdicts"]}


def test_the_resilient_user_service_passes_with_its_own_breakers_evidence(chaos_stack, workdir):
    code, journal = _run(chaos_stack, workdir, "resilient")
    verdicts = _verdicts(journal)
    assert code == 0, {c: (r, e) for c, (r, e) in _details(journal).items() if r != "pass"}
    assert verdicts["pg: HALF_OPEN after the wait"] == "pass"
    assert verdicts["kafka: HALF_OPEN after the wait"] == "pass"
    assert verdicts["pg: pool recovered, no leaked sessions"] == "pass"
    assert verdicts["kafka: no acknowledged message lost"] == "pass"


def test_the_fragile_user_service_fails(chaos_stack, workdir):
    code, journal = _run(chaos_stack, workdir, "fragile")
    verdicts = _verdicts(journal)
    assert code == 1, verdicts
    assert verdicts["pg: breaker opens when its window reaches a threshold"] == "fail"
    assert verdicts["kafka: breaker opens when its window reaches a threshold"] == "fail"
