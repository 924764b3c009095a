"""A run's history exported as OTLP/JSON spans: one trace, calls under the phase they started in."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lab.scenario.history import FAIL, OK, UNKNOWN, History
from lab.scenario.report.spans import STATUS_ERROR, STATUS_UNSET, otlp_json, write_spans

pytestmark = pytest.mark.unit


@dataclasses.dataclass
class Result:
    scenario: str
    history: History
    verdict: str = "pass"
    target: str = "lab clients"
    negative_control: bool = False


def recorded() -> History:
    now = [0.0]
    history = History(clock=lambda: now[0])
    history.started_unix_ns = 1_700_000_000_000_000_000

    def at(clock_s, *args, **kw):
        now[0] = clock_s
        history.add(*args, **kw)

    at(0.0, "phase", name="baseline", edge="start")
    at(0.5, "op", OK, t=0.5, lane="pg", started=0.4, ended=0.5, latency_s=0.1, breaker_state="closed")
    at(1.0, "phase", name="baseline", edge="end")
    at(1.0, "phase", name="fault", edge="start")
    at(1.1, "fault", name="pg-latency", edge="inject", fault="latency 500 ms on postgres")
    at(1.9, "op", FAIL, t=1.9, lane="pg", started=1.2, ended=1.9, latency_s=0.7, error_class="QueryTimeout")
    at(1.95, "breaker", component="postgres", breaker="pg", **{"from": "closed"}, to="open", reason="failures")
    at(2.0, "op", UNKNOWN, t=2.0, lane="kafka", started=1.5, ended=2.0, latency_s=0.5, error_class="Cancelled")
    at(2.0, "phase", name="fault", edge="end")
    at(2.1, "fault", name="pg-latency", edge="heal", report={})
    return history


def spans_by_name(document):
    [resource] = document["resourceSpans"]
    [scope] = resource["scopeSpans"]
    return {span["name"]: span for span in scope["spans"]}, scope["spans"]


def test_a_run_is_one_trace_with_calls_under_their_phase():
    document = json.loads(json.dumps(otlp_json([Result("pg_latency", recorded(), verdict="fail")])))
    named, spans = spans_by_name(document)
    assert len({span["traceId"] for span in spans}) == 1 and len(spans[0]["traceId"]) == 32
    assert len({span["spanId"] for span in spans}) == len(spans) == 7  # root, 2 phases, 1 fault, 3 calls
    root = named["scenario pg_latency"]
    assert "parentSpanId" not in root and root["status"]["code"] == STATUS_ERROR
    assert [e["name"] for e in root["events"]] == ["breaker closed -> open"]
    phases = {name: named[f"phase {name}"]["spanId"] for name in ("baseline", "fault")}
    assert named["fault pg-latency"]["parentSpanId"] == phases["fault"]
    calls = [span for span in spans if span["name"].startswith("call ")]
    assert [call["parentSpanId"] for call in calls] == [phases["baseline"], phases["fault"], phases["fault"]]
    assert [call["status"]["code"] for call in calls] == [STATUS_UNSET, STATUS_ERROR, STATUS_UNSET]
    assert calls[1]["status"]["message"] == "QueryTimeout"
    outcome = [{a["key"]: a["value"] for a in call["attributes"]}["lab.outcome"] for call in calls]
    assert outcome == [{"stringValue": "ok"}, {"stringValue": "fail"}, {"stringValue": "unknown"}]
    assert (calls[1]["startTimeUnixNano"], calls[1]["endTimeUnixNano"]) == (
        str(1_700_000_001_200_000_000), str(1_700_000_001_900_000_000))  # started/ended, on the run's clock


def test_each_scenario_run_is_its_own_trace_and_the_file_is_written(tmp_path):
    path = tmp_path / "out" / "spans.json"
    count = write_spans(path, [Result("a", recorded()), Result("b", recorded())])
    _named, spans = spans_by_name(json.loads(path.read_text()))
    assert count == len(spans) == 14
    assert len({span["traceId"] for span in spans}) == 2
