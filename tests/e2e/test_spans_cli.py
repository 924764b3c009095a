"""`lab run ... --spans out.json` as a user runs it: the run's calls as spans in an OTLP/JSON file."""

from __future__ import annotations

import json

import pytest

from ..labenv import LabEnv

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory):
    env = LabEnv(tmp_path_factory.mktemp("spans-lab"))
    env.run("up")
    yield env
    env.run("down", "--purge", check=False)


def test_a_run_writes_its_calls_phases_and_faults_as_one_trace(lab_env, tmp_path):
    out = tmp_path / "spans.json"
    journal = tmp_path / "journal.json"
    lab_env.run("run", "network_partition", "--spans", str(out), "--json", str(journal), timeout=300)
    [resource] = json.loads(out.read_text())["resourceSpans"]
    [scope] = resource["scopeSpans"]
    spans = scope["spans"]
    assert len({span["traceId"] for span in spans}) == 1
    names = [span["name"] for span in spans]
    assert names[0] == "scenario network_partition" and "phase fault" in names
    assert any(name.startswith("fault ") for name in names)
    [scenario] = json.loads(journal.read_text())["scenarios"]
    calls = [span for span in spans if span["name"].startswith("call ")]
    assert len(calls) == sum(1 for e in scenario["events"] if e["kind"] == "op") > 0  # every call, once
    failed = [e for e in scenario["events"] if e["kind"] == "op" and e["status"] == "fail"]
    assert sum(1 for call in calls if call["status"]["code"] == 2) == len(failed) > 0  # the partition's failures
