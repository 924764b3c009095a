"""The HTML report's drawing, from made-up histories (pure functions: no stack, no browser)."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

import pytest

from lab.scenario.report import timeline
from lab.scenario.report.html import Case, render
from lab.scenario.store import StoredResult

pytestmark = pytest.mark.unit
SVG = "{http://www.w3.org/2000/svg}"


def _events() -> list[dict]:
    phases = [("steady_state", 0.0, 0.1), ("baseline", 0.1, 1.0), ("fault", 1.0, 3.0), ("heal", 3.0, 3.1),
              ("recovery", 3.1, 4.0), ("final", 4.0, 4.2)]
    events = []
    for name, start, end in phases:
        events += [{"t": start, "kind": "phase", "status": "ok", "name": name, "edge": "start"},
                   {"t": end, "kind": "phase", "status": "ok", "name": name, "edge": "end"}]
    events += [{"t": 0.5, "kind": "op", "status": "ok", "target": "pg", "latency_s": 0.002},
               {"t": 1.5, "kind": "op", "status": "fail", "target": "pg", "latency_s": 0.5, "error_class": "X"},
               {"t": 2.0, "kind": "op", "status": "unknown", "target": "kafka", "latency_s": 1.0,
                "error_class": "Hung"},
               {"t": 1.2, "kind": "breaker", "status": "ok", "target": "pg", "from": "CLOSED", "to": "OPEN"},
               {"t": 2.2, "kind": "breaker", "status": "ok", "target": "pg", "from": "OPEN", "to": "HALF_OPEN"},
               {"t": 3.3, "kind": "breaker", "status": "ok", "target": "pg", "from": "HALF_OPEN", "to": "CLOSED"}]
    for t in (0.2, 0.4, 0.6, 3.5, 3.7):  # the workload sampled; nothing between 0.6 and 3.5 s (a gap)
        events.append({"t": t, "kind": "resource", "status": "ok", "process": "workload", "fds": 10,
                       "tcp_connections": 2, "rss_bytes": 2**20, "threads": 1})
    return sorted(events, key=lambda e: e["t"])


def _svg(events: list[dict]) -> ET.Element:
    return ET.fromstring(timeline.render(events))


def _x(seconds: float, end_s: float = 4.2) -> float:
    return timeline.LEFT_PX + seconds / end_s * (timeline.WIDTH_PX - timeline.RIGHT_PX - timeline.LEFT_PX)


def test_every_call_is_a_point_coloured_by_its_outcome():
    svg = _svg(_events())
    calls = [el for el in svg.iter() if "call" in el.get("class", "").split()]
    assert [(c.tag.replace(SVG, ""), c.get("fill")) for c in calls] == [
        ("circle", timeline.OUTCOME_COLOURS["ok"]), ("circle", timeline.OUTCOME_COLOURS["fail"]),
        ("rect", timeline.OUTCOME_COLOURS["unknown"])]
    # the slower call sits higher (smaller y)
    assert float(calls[1].get("cy")) < float(calls[0].get("cy"))


def test_the_fault_window_is_shaded_from_its_start_to_its_end():
    [window] = [el for el in _svg(_events()).iter() if el.get("class") == "fault-window"]
    assert float(window.get("x")) == pytest.approx(_x(1.0), abs=0.1)
    assert float(window.get("width")) == pytest.approx(_x(3.0) - _x(1.0), abs=0.2)


def test_breaker_states_are_bands_from_transition_to_transition():
    bands = {el.get("data-target"): el for el in _svg(_events()).iter() if el.get("class") == "breaker-band"}
    assert sorted(bands) == ["kafka", "pg"]  # kafka's calls drawn, its breaker never moved: CLOSED throughout
    assert [r.get("class") for r in bands["kafka"] if r.tag == f"{SVG}rect"] == ["state CLOSED"]
    band = bands["pg"]
    states = [(r.get("class").split()[1], float(r.get("x")), float(r.get("width")))
              for r in band if r.tag == f"{SVG}rect"]
    assert [s for s, _, _ in states] == ["CLOSED", "OPEN", "HALF_OPEN", "CLOSED"]
    assert states[1][1] == pytest.approx(_x(1.2), abs=0.1)
    assert states[1][2] == pytest.approx(_x(2.2) - _x(1.2), abs=0.2)


def test_every_phase_is_marked_and_resource_lines_break_where_a_process_was_not_sampled():
    svg = _svg(_events())
    assert [el.get("data-phase") for el in svg.iter() if el.get("class") == "phase"] == [
        "steady_state", "baseline", "fault", "heal", "recovery", "final"]
    fds = [el for el in svg.iter() if el.get("class") == "resources" and el.get("data-field") == "fds"][0]
    lines = [el for el in fds if el.get("class") == "resource workload"]
    assert [len(line.get("points").split()) for line in lines] == [3, 2]


def test_names_and_evidence_are_escaped():
    page = render([Case("<script>x</script>", "run 1", "fail", 1.0, [("c", "fail", "<img src=x>")], _events())], {},
                  "t")
    assert "<script>x" not in page and "<img src=x>" not in page and "&lt;script&gt;" in page


def _stored(scenario: str, verdicts: list[str], metric: list[float]) -> list[StoredResult]:
    return [StoredResult(i, i, scenario, v, 1e9 + i, {"pg_detection_s": m}) for i, (v, m) in
            enumerate(zip(verdicts, metric))]


def test_flaky_and_regressed_scenarios_are_listed_and_each_has_a_trend_chart():
    flaky = _stored("flappy", ["pass", "fail"] * 6, [0.1] * 12)
    slowed = _stored("slowed", ["pass"] * 12, [0.1, 0.11, 0.1, 0.12, 0.1, 0.11, 0.1, 0.1, 0.11, 0.1, 0.1, 2.0])
    page = render([], {"flappy": flaky, "slowed": slowed}, "t")
    flaky_table = page[page.index('id="flaky"'):page.index("</table>", page.index('id="flaky"'))]
    regression_table = page[page.index('id="regressions"'):page.index("</table>", page.index('id="regressions"'))]
    assert "flappy" in flaky_table and "slowed" not in flaky_table
    assert "slowed" in regression_table and "pg_detection_s" in regression_table and "flappy" not in regression_table
    assert len(re.findall(r'<svg class="trend"', page)) == 2
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch


def test_every_drawn_run_has_its_own_anchor_and_the_summary_links_to_it():
    cases = [Case(name, "run", "pass", 1.0, [], _events()) for name in ("a", "b", "a", "a")]
    page = render(cases, {}, "t")
    ids = re.findall(r'<section class="scenario" id="([^"]+)"', page)
    assert ids == ["timeline-a", "timeline-b", "timeline-a-2", "timeline-a-3"]
    assert re.findall(r'<a href="#([^"]+)"', page) == ids
