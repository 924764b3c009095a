"""The matrix names real mutants, scenarios and checks (a typo would make a cell pass vacuously)."""

from __future__ import annotations

import pytest

from lab.errors import UsageError
from lab.scenario import available
from lab.proxy import mutants as proxy_mutants
from lab.scenario.matrix import EXPECTED, PROXY_EXPECTED, UNCOVERED_BECAUSE, cells, proxy_cells, uncovered
from lab.scenario.mutants import MUTANTS, mutant

pytestmark = pytest.mark.unit


def test_every_mutant_has_a_row_and_every_row_a_mutant():
    assert set(EXPECTED) == set(MUTANTS)
    assert set(PROXY_EXPECTED) == set(proxy_mutants.MUTANTS)
    assert not set(MUTANTS) & set(proxy_mutants.MUTANTS)  # one name, one mutant


def test_every_cell_names_a_scenario_and_its_checks():
    scenarios = available()
    for mutant_name, scenario, checks in cells() + proxy_cells():
        assert scenario in scenarios, (mutant_name, scenario)
        names = [name for name, _ in scenarios[scenario].checks(scenarios[scenario].profile)]
        assert checks and set(checks) <= set(names), (mutant_name, scenario, set(checks) - set(names))


def test_an_unknown_mutant_is_a_usage_error_naming_the_known_ones():
    with pytest.raises(UsageError, match="unknown mutant 'nope'.*half_open_skipped"):
        mutant("nope")
    assert mutant(None) is None


def test_every_check_of_every_scenario_fails_on_a_mutant_or_says_why_not():
    """The matrix's promise, read from its definition: each scenario check is listed to FAIL on at least one
    mutant (tests/chaos/test_mutant_matrix.py runs the cells; tests/chaos/test_scenarios.py runs every scenario
    against the resilient clients, where every check must pass), or it is in UNCOVERED_BECAUSE with a reason.
    Nothing is in both: a check that gains a mutant must leave the list."""
    scenarios = available()
    missing = uncovered(scenarios)
    for name, scenario in scenarios.items():
        names = {check for check, _ in scenario.checks(scenario.profile)}
        argued = set(UNCOVERED_BECAUSE.get(name, {}))
        assert argued <= names, (name, argued - names)  # no reason for a check that does not exist
        assert set(missing.get(name, [])) == argued, (
            name, "fails on no mutant, no reason given:", set(missing.get(name, [])) - argued,
            "listed as uncovered but a mutant fails it:", argued - set(missing.get(name, [])))
    assert set(UNCOVERED_BECAUSE) <= set(scenarios)
    assert all(reason.strip() for row in UNCOVERED_BECAUSE.values() for reason in row.values())
