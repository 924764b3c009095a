"""The runs of a JSON journal (``lab run --json``) as cases for the HTML report: ``lab report --journal FILE``.

Runs against ``--target`` (your own service, an HTTP target) are not stored in the run history, so the
journal is where their timelines and per-phase HTTP figures are kept; this draws them. A journal that is
not one (unreadable, not JSON, a scenario without its fields) is a ``UsageError`` naming the file and
what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import UsageError
from .html import Case


def cases_from_journal(path: Path) -> list[Case]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"journal {path}: cannot be read: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"journal {path}: is not a JSON journal of `lab run --json` ({err})") from None
    scenarios = data.get("scenarios") if isinstance(data, dict) else None
    if not isinstance(scenarios, list):
        raise UsageError(f"journal {path}: has no \"scenarios\" list: not a journal of `lab run --json`")
    cases = []
    for index, scenario in enumerate(scenarios):
        cases.append(_case(path, index, scenario))
    return cases


def _case(path: Path, index: int, scenario: Any) -> Case:
    fields = ("name", "verdict", "duration_s", "verdicts", "events")
    missing = [f for f in fields if not isinstance(scenario, dict) or f not in scenario]
    if missing:
        raise UsageError(f"journal {path}: scenario #{index + 1} has no {missing[0]!r}")
    label = (f"run {index + 1}" + (f" against {scenario['target']}" if scenario.get("target") else "")
             + (" (negative control)" if scenario.get("negative_control") else ""))
    try:
        checks = [(v["check"], v["result"], v["evidence"]) for v in scenario["verdicts"]]
        return Case(str(scenario["name"]), label, str(scenario["verdict"]), float(scenario["duration_s"]), checks,
                    list(scenario["events"]))
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"journal {path}: scenario #{index + 1} is malformed ({type(err).__name__}: {err})") from None
