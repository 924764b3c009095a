"""A target's own statements reach the protocol-aware faults, in place of the lab workload's; a bad entry is a
UsageError naming it. Pure: the scenarios' fault plans are built, nothing is injected."""

from __future__ import annotations

import pytest

from lab.errors import UsageError
from lab.scenario import ClientProfile, available
from lab.scenario.model import FaultContext
from lab.scenario.python_target import python_target
from lab.scenario.target import statements_of

pytestmark = pytest.mark.unit


class _Settings:
    proxy_api = "http://127.0.0.1:9"

    def __getattr__(self, name):
        return "x"


def _patterns(scenario: str, statements: dict[str, str]) -> list[str]:
    context = FaultContext(_Settings(), None, ClientProfile(), statements)
    return [fault.spec.pattern for fault in available()[scenario].faults(context)]


@pytest.mark.parametrize("scenario, ours", [("pg_admin_shutdown", "lab_admin_shutdown"),
                                            ("pg_serialization_failures", "lab_txn")])
def test_the_protocol_faults_match_the_targets_statements_where_it_names_them(scenario, ours):
    assert ours in _patterns(scenario, {})[0]
    assert _patterns(scenario, {"pg": "UPDATE stock"}) == ["UPDATE stock"]


async def _op() -> None:
    return None


def test_a_python_target_carries_its_statements():
    assert statements_of(python_target(_op, statements={"pg": "UPDATE stock"})) == {"pg": "UPDATE stock"}
    assert statements_of(python_target(_op)) == {}


@pytest.mark.parametrize("statements, named", [
    ({"kafka": "x"}, "statements for 'kafka': only pg statements can be named"),
    ({"pg": ""}, "statements['pg'] must be a non-empty regular expression"),
    ({"pg": "(unclosed"}, "statements['pg'] = '(unclosed' is not a regular expression"),
])
def test_a_bad_statements_entry_is_named(statements, named):
    with pytest.raises(UsageError, match="python target 'shop'") as raised:
        python_target(_op, name="shop", statements=statements)
    assert named in str(raised.value)
