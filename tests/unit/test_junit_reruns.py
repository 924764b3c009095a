"""JUnit for repeated runs: flaky and rerun failures as CI tools read them (Surefire's elements)."""

from __future__ import annotations

import types
from xml.etree import ElementTree as ET

import pytest

from lab.scenario.checks import Verdict
from lab.scenario.report import write_junit

pytestmark = pytest.mark.unit


def result(scenario, verdict):
    return types.SimpleNamespace(scenario=scenario, negative_control=False, verdict=verdict, duration_s=1.0,
                                 error=None, measurements={}, verdicts=[Verdict("a check", verdict, "evidence")])


def test_mixed_verdicts_are_flaky_all_failed_is_a_failure_with_reruns(tmp_path):
    path = tmp_path / "out.xml"
    write_junit(path, [result("a", "pass"), result("b", "fail"), result("c", "fail"),
                       result("a", "pass"), result("b", "pass"), result("c", "fail")])
    suite = ET.parse(path).getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert [child.tag for child in cases["a"]] == ["system-out"]
    assert [child.tag for child in cases["b"]] == ["flakyFailure", "system-out"]
    assert [child.tag for child in cases["c"]] == ["failure", "rerunFailure", "system-out"]
    assert cases["b"].get("time") == "2.000"
