"""The check-by-mutant matrix, cell by cell: against each mutant, each check listed for it FAILS.

lab/scenario/matrix.py holds the matrix; each mutant runs only on the scenarios
listed for it. The cells run with LAB_MUTANT_MATRIX=full (`make test-mutants`, which
CI runs after `make test`): a scenario run per cell, minutes, which `make test`'s
15-minute budget cannot hold; `make test` keeps the matrix's own consistency tests
(tests/unit/test_mutant_matrix_data.py). The proxy mutants' cells (lab/proxy/mutants.py)
restart the test stack's proxy as the mutant, and as the shipped proxy again afterwards. That every check passes on the resilient
target is tests/chaos/test_scenarios.py.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from lab.scenario import LabClients, available, run
from lab.scenario.matrix import cells, proxy_cells
from lab.scenario.mutants import MUTANTS
from lab.stack.backend import running

# The matrix was measured on the local backend. On compose the same faults surface as other error types in some
# runs (a reset arrives as an OSError rather than a driver error: pg_driver_error_untranslated x reset_peer_mid_query
# passed there once), so it is not asserted on compose until it is measured there.
pytestmark = [pytest.mark.chaos,
              pytest.mark.skipif(os.environ.get("LAB_TEST_BACKEND") == "compose",
                                 reason="the check-by-mutant matrix is measured on the local backend only")]

FULL = os.environ.get("LAB_MUTANT_MATRIX") == "full"
CELLS = [(m, s, c) for m, s, c in cells()] if FULL else []


@pytest.mark.parametrize(("mutant", "scenario", "expected"), CELLS, ids=[f"{m}-{s}" for m, s, _ in CELLS])
def test_every_listed_check_fails_on_its_mutant(chaos_settings, mutant, scenario, expected):
    result = asyncio.run(run(available()[scenario], LabClients(MUTANTS[mutant]), chaos_settings))
    assert result.error is None, result.error
    verdicts = {v.check: v for v in result.verdicts}
    summary = "\n".join(f"{v.result:7} {v.check}: {v.evidence}" for v in result.verdicts)
    for check in expected:
        assert check in verdicts, f"{scenario} has no check {check!r}:\n{summary}"
        assert verdicts[check].result == "fail", f"{check!r} did not fail on mutant {mutant}:\n{summary}"
    healed = result.history.probe("faults.healed")
    assert healed is not None and healed.status == "ok", healed


@pytest.fixture
def proxy_mutant(chaos_stack, chaos_settings):
    """Restart the stack's proxy with the named proxy mutant (LAB_PROXY_MUTANT), and without it afterwards."""
    stack = running(chaos_settings)

    def restart(name: str | None) -> None:
        stack.kill("proxy")
        chaos_stack.run("up", extra_env={"LAB_PROXY_MUTANT": name or ""})  # "": the shipped proxy

    started: list[str] = []

    def use(name: str) -> None:
        started.append(name)
        restart(name)
        log = chaos_stack.run("logs", "proxy", "-n", "50").stdout
        assert f"MUTANT {name}" in log, f"the proxy did not start as mutant {name}:\n{log}"

    yield use
    if started:
        restart(None)


# each proxy cell restarts the stack's proxy: they run with the whole matrix (`make test-mutants`, run by CI)
PROXY_CELLS = proxy_cells() if FULL else []


@pytest.mark.skipif(os.environ.get("LAB_TEST_BACKEND") == "compose",
                    reason="proxy mutants patch lab.proxy: the compose backend runs Toxiproxy")
@pytest.mark.parametrize(("mutant", "scenario", "expected"), PROXY_CELLS,
                         ids=[f"proxy-{m}-{s}" for m, s, _ in PROXY_CELLS])
def test_every_listed_check_fails_on_its_proxy_mutant(chaos_settings, proxy_mutant, mutant, scenario, expected):
    proxy_mutant(mutant)
    result = asyncio.run(run(available()[scenario], LabClients(), chaos_settings))
    assert result.error is None, result.error
    verdicts = {v.check: v for v in result.verdicts}
    summary = "\n".join(f"{v.result:7} {v.check}: {v.evidence}" for v in result.verdicts)
    print(f"\n== {scenario} on proxy mutant {mutant}\n{summary}")
    for check in expected:
        assert check in verdicts, f"{scenario} has no check {check!r}:\n{summary}"
        assert verdicts[check].result == "fail", f"{check!r} did not fail on proxy mutant {mutant}:\n{summary}"
