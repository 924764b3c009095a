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


@pytest.fixture(scope="module")
def spans_run(lab_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("spans") / "spans.json"
    journal = out.parent / "journal.json"
    lab_env.run("run", "network_partition", "--spans", str(out), "--json", str(journal), timeout=300)
    [resource] = json.loads(out.read_text())["resourceSpans"]
    return {scope["scope"]["name"]: scope["spans"] for scope in resource["scopeSpans"]}, journal


def test_a_run_writes_its_calls_phases_and_faults_as_one_trace(spans_run):
    scopes, journal = spans_run
    spans = scopes["lab.scenario"]
    assert len({span["traceId"] for span in spans}) == 1
    names = [span["name"] for span in spans]
    assert names[0] == "scenario network_partition" and "phase fault" in names
    assert any(name.startswith("fault ") for name in names)
    [scenario] = json.loads(journal.read_text())["scenarios"]
    calls = [span for span in spans if span["name"].startswith("call ")]
    assert len(calls) == sum(1 for e in scenario["events"] if e["kind"] == "op") > 0  # every call, once
    failed = [e for e in scenario["events"] if e["kind"] == "op" and e["status"] == "fail"]
    assert sum(1 for call in calls if call["status"]["code"] == 2) == len(failed) > 0  # the partition's failures


def _attribute(span: dict, key: str):
    return next((next(iter(a["value"].values())) for a in span["attributes"] if a["key"] == key), None)


def test_the_clients_own_spans_show_a_message_from_its_send_to_its_consume_in_one_trace(spans_run):
    """The Kafka lane's sends (PRODUCER spans) and the read-back's consumes (CONSUMER spans) of the same
    envelope: the consume span in the send span's trace, its child (the traceparent header carried it);
    and the Postgres lane's queries and pool acquires are there too."""
    scopes, _ = spans_run
    spans = scopes["lab.clients"]
    sends = {_attribute(s, "messaging.message.id"): s for s in spans if s["name"].startswith("send ")
             and _attribute(s, "lab.delivery.status") == "acked"}
    consumes = [s for s in spans if s["name"].startswith("process ") and _attribute(s, "messaging.message.id") in sends]
    assert sends and consumes
    assert {s["kind"] for s in sends.values()} == {4} and {s["kind"] for s in consumes} == {5}  # PRODUCER, CONSUMER
    for consume in consumes:
        send = sends[_attribute(consume, "messaging.message.id")]
        assert (consume["traceId"], consume["parentSpanId"]) == (send["traceId"], send["spanId"])
    assert len(consumes) == len(sends)  # every acked message read back once, each in its send's trace
    names = {s["name"] for s in spans}
    assert "pg pool acquire" in names and any(n.startswith("pg ") and n != "pg pool acquire" for n in names)
