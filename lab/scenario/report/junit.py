"""JUnit XML: one testsuite per run, one testcase per scenario, each check in the output.

A scenario run more than once (``--repeat``) is one testcase, reported the way CI
tools read reruns (Maven Surefire, pytest-rerunfailures): mixed verdicts pass with a
``flakyFailure`` per failed run; all failed is a failure with a ``rerunFailure`` per
later run; the runs' count and time are summed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def _lines(result: Any) -> list[str]:
    return [f"{v.result.upper():7} {v.check}: {v.evidence}" for v in result.verdicts]


def _message(result: Any) -> str:
    if result.verdict == "unknown":
        return (result.error or "a check could not decide")[:500]
    failed = [v for v in result.verdicts if v.result == "fail"]
    return "; ".join(f"{v.check}: {v.evidence}" for v in failed)[:500]


def write_junit(path: Path, results: list[Any]) -> None:
    cases: dict[str, list[Any]] = {}
    for result in results:
        name = result.scenario + (" [negative control]" if result.negative_control else "")
        cases.setdefault(name, []).append(result)
    verdicts = {name: _case_verdict(runs) for name, runs in cases.items()}
    suite = ET.Element("testsuite", name="chaoslab", tests=str(len(cases)),
                       failures=str(sum(1 for v in verdicts.values() if v == "fail")),
                       errors=str(sum(1 for v in verdicts.values() if v == "unknown")),
                       time=f"{sum(r.duration_s for r in results):.3f}")
    for name, runs in cases.items():
        case = ET.SubElement(suite, "testcase", classname="chaoslab.scenarios", name=name,
                             time=f"{sum(r.duration_s for r in runs):.3f}")
        bad = [r for r in runs if r.verdict != "pass"]
        if verdicts[name] == "flaky":
            for run in bad:
                node = ET.SubElement(case, "flakyFailure", message=_message(run), type=run.verdict)
                ET.SubElement(node, "system-out").text = "\n".join(_lines(run))
        elif bad:
            first, later = bad[0], bad[1:]
            node = ET.SubElement(case, "failure" if first.verdict == "fail" else "error", message=_message(first))
            node.text = "\n".join(_lines(first))
            for run in later:
                rerun = ET.SubElement(case, "rerunFailure" if run.verdict == "fail" else "rerunError",
                                      message=_message(run), type=run.verdict)
                ET.SubElement(rerun, "system-out").text = "\n".join(_lines(run))
        last = runs[-1]
        ET.SubElement(case, "system-out").text = "\n".join(
            _lines(last) + [f"{k} = {v}" for k, v in last.measurements.items()]
            + ([f"runs: {len(runs)}, passed: {len(runs) - len(bad)}"] if len(runs) > 1 else []))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _case_verdict(runs: list[Any]) -> str:
    """pass | fail | unknown | flaky (some runs passed, some did not)."""
    passed = sum(1 for r in runs if r.verdict == "pass")
    if passed == len(runs):
        return "pass"
    if passed:
        return "flaky"
    return "fail" if runs[0].verdict == "fail" else "unknown"
