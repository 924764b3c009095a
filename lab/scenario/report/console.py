"""The verdict table printed at the end of `python -m lab run`."""

from __future__ import annotations

from typing import Any

MARKS = {"pass": "PASS", "fail": "FAIL", "unknown": "UNKNOWN"}


def verdict_table(results: list[Any]) -> str:
    lines = []
    for result in results:
        title = result.scenario + (" (negative control)" if result.negative_control else "")
        timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.measurements.items())
        suffix = "; " + timings if timings else ""
        lines.append(f"{MARKS[result.verdict]:<8} {title}  [{result.duration_s:.1f}s{suffix}]")
        for verdict in result.verdicts:
            lines.append(f"    {MARKS[verdict.result]:<8} {verdict.check}: {verdict.evidence}")
    passed = sum(1 for r in results if r.verdict == "pass")
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)
