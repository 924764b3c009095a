"""The nightly chaos workflow: scheduled, compose backend, every scenario, reports uploaded, always healed."""

from __future__ import annotations

import pytest
import yaml

from ..labenv import ROOT

pytestmark = pytest.mark.unit


def test_nightly_workflow_runs_every_scenario_on_compose_and_uploads_reports():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly-chaos.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as a boolean
    assert triggers["schedule"][0]["cron"]
    steps = workflow["jobs"]["chaos"]["steps"]
    commands = " ".join(step.get("run", "") for step in steps)
    assert "lab up --backend compose" in commands
    assert "lab run --all --history history/history.sqlite --junit reports/chaos.xml --json reports/chaos.json" \
        in commands
    assert "lab history --history history/history.sqlite --check" in commands
    assert "--json reports/chaos.json --html reports/chaos.html" in commands  # the run's own HTML report
    report = next(step for step in steps if "lab report" in step.get("run", ""))
    assert report["if"] == "always()" and "-o reports/history.html" in report["run"]
    cached = [step for step in steps if step.get("uses", "").startswith("actions/cache/")]
    assert [step["with"]["path"] for step in cached] == ["history/", "history/"], "the store lives from night to night"
    upload = next(step for step in steps if "upload-artifact" in step.get("uses", ""))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    heal = next(step for step in steps if "lab heal" in step.get("run", ""))
    assert heal["if"] == "always()"
