"""JUnit XML: one testsuite per run, one testcase per scenario, each check in the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def write_junit(path: Path, results: list[Any]) -> None:
    failures = sum(1 for r in results if r.verdict == "fail")
    errors = sum(1 for r in results if r.verdict == "unknown")
    suite = ET.Element("testsuite", name="chaoslab", tests=str(len(results)), failures=str(failures),
                       errors=str(errors), time=f"{sum(r.duration_s for r in results):.3f}")
    for result in results:
        name = result.scenario + (" [negative control]" if result.negative_control else "")
        case = ET.SubElement(suite, "testcase", classname="chaoslab.scenarios", name=name,
                             time=f"{result.duration_s:.3f}")
        lines = [f"{v.result.upper():7} {v.check}: {v.evidence}" for v in result.verdicts]
        if result.verdict == "fail":
            failed = [v for v in result.verdicts if v.result == "fail"]
            node = ET.SubElement(case, "failure", message="; ".join(f"{v.check}: {v.evidence}" for v in failed)[:500])
            node.text = "\n".join(lines)
        elif result.verdict == "unknown":
            node = ET.SubElement(case, "error", message=(result.error or "a check could not decide")[:500])
            node.text = "\n".join(lines)
        ET.SubElement(case, "system-out").text = "\n".join(lines + [f"{k} = {v}" for k, v in result.measurements.items()])
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
