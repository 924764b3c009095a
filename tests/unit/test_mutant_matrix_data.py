"""The matrix names real mutants, scenarios and checks (a typo would make a cell pass vacuously)."""

from __future__ import annotations

import pytest

from lab.errors import UsageError
from lab.scenario import available
from lab.scenario.matrix import EXPECTED, cells
from lab.scenario.mutants import MUTANTS, mutant

pytestmark = pytest.mark.unit


def test_every_mutant_has_a_row_and_every_row_a_mutant():
    assert set(EXPECTED) == set(MUTANTS)


def test_every_cell_names_a_scenario_and_its_checks():
    scenarios = available()
    for mutant_name, scenario, checks in cells():
        assert scenario in scenarios, (mutant_name, scenario)
        names = [name for name, _ in scenarios[scenario].checks(scenarios[scenario].profile)]
        assert checks and set(checks) <= set(names), (mutant_name, scenario, set(checks) - set(names))


def test_an_unknown_mutant_is_a_usage_error_naming_the_known_ones():
    with pytest.raises(UsageError, match="unknown mutant 'nope'.*half_open_skipped"):
        mutant("nope")
    assert mutant(None) is None
