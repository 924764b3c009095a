"""Every scenario passes against the resilient clients and FAILS against the negative control."""

from __future__ import annotations

import asyncio

import pytest

from lab.scenario import LabClients, NegativeControl, available, run
from lab.stack.backend import running

pytestmark = pytest.mark.chaos

SCENARIOS = sorted(available())


def _summary(result) -> str:
    return "\n".join(f"{v.result:7} {v.check}: {v.evidence}" for v in result.verdicts)


def _runnable(name: str, settings):
    scenario = available()[name]
    skip = scenario.skip_reason(running(settings))
    if skip:
        pytest.skip(skip)
    return scenario


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_passes_against_the_resilient_clients(chaos_settings, name):
    result = asyncio.run(run(_runnable(name, chaos_settings), LabClients(), chaos_settings))
    assert result.error is None, result.error
    assert result.verdict == "pass", _summary(result)
    healed = result.history.probe("faults.healed")
    assert healed is not None and healed.status == "ok"


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_fails_under_the_negative_control(chaos_settings, name):
    result = asyncio.run(run(_runnable(name, chaos_settings), NegativeControl(), chaos_settings))
    assert result.error is None, result.error
    assert result.verdict == "fail", _summary(result)
    healed = result.history.probe("faults.healed")
    assert healed is not None and healed.status == "ok", healed.get("evidence")
