"""The HTML report of real runs, opened in a real headless Chromium; the resource check on a leaking target.

The browser is Debian's ``chromium`` (``make browser`` installs it; CI's .ci/run calls that). Without it
the browser tests are skipped, saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.scenario.store import RunStore

from ..browser import find_browser, open_page

pytestmark = pytest.mark.chaos

SCENARIO_DIR = Path(__file__).parent / "resource_scenarios"
GROWTH = "no fd or connection growth"
PHASES = ["steady_state", "baseline", "fault", "heal", "recovery", "final"]
# what the tests read from the page, as JSON: per timeline section its parts
INSPECT = """JSON.stringify({
  timelines: [...document.querySelectorAll('section.scenario')].map(s => ({
    id: s.id, verdict: s.dataset.verdict,
    calls: s.querySelectorAll('svg.timeline .call').length,
    failed_calls: s.querySelectorAll('svg.timeline .call.fail').length,
    fault_windows: [...s.querySelectorAll('rect.fault-window')].map(r => r.getBBox().width),
    bands: [...s.querySelectorAll('g.breaker-band')].map(g => g.dataset.target),
    band_states: [...s.querySelectorAll('g.breaker-band rect.state')].map(r => r.classList[1]),
    phases: [...s.querySelectorAll('line.phase')].map(l => l.dataset.phase),
    resources: [...s.querySelectorAll('g.resources')].map(g => g.dataset.field),
    workload_lines: s.querySelectorAll('polyline.resource.workload').length,
    rendered_width: s.querySelector('svg.timeline').getBoundingClientRect().width})),
  trend_rows: document.querySelectorAll('table.trends svg.trend').length,
  flaky: !!document.getElementById('flaky'), regressions: !!document.getElementById('regressions')})"""


def _browser() -> str:
    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium on this machine: `make browser` installs Debian's chromium (CI does)")
    return browser


def _run(chaos_stack, tmp_path: Path, leaky: bool, *extra: str):
    return chaos_stack.run("run", "leaky_pg" if leaky else "tidy_pg", "--history", str(tmp_path / "history.sqlite"),
                           *extra, extra_env={"LAB_SCENARIO_PATH": str(SCENARIO_DIR), "LEAKY": "1" if leaky else "0"},
                           timeout=180, check=False)


def _growth(journal: Path) -> dict:
    scenario = json.loads(journal.read_text())["scenarios"][0]
    return next(v for v in scenario["verdicts"] if v["check"] == GROWTH)


def test_the_growth_check_fails_on_a_leaking_target_and_passes_on_ours(chaos_stack, tmp_path):
    ours = _run(chaos_stack, tmp_path, False, "--json", str(tmp_path / "ours.json"))
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert _growth(tmp_path / "ours.json")["result"] == "pass"
    leaking = _run(chaos_stack, tmp_path, True, "--json", str(tmp_path / "leaky.json"))
    assert leaking.returncode == 1, leaking.stdout + leaking.stderr
    verdict = _growth(tmp_path / "leaky.json")
    assert verdict["result"] == "fail" and "workload: fds" in verdict["evidence"], verdict
    stored = {r.scenario: r for r in RunStore(tmp_path / "history.sqlite").results()}
    assert stored["leaky_pg"].metrics["resource.workload.tcp_growth"] > 20
    assert stored["tidy_pg"].metrics["resource.workload.tcp_growth"] <= 4


def test_run_html_renders_in_chromium_with_every_call_and_no_network(chaos_stack, tmp_path):
    browser = _browser()
    html, journal = tmp_path / "run.html", tmp_path / "run.json"
    result = _run(chaos_stack, tmp_path, False, "--html", str(html), "--json", str(journal))
    assert result.returncode == 0, result.stdout + result.stderr
    events = json.loads(journal.read_text())["scenarios"][0]["events"]
    page = open_page(browser, html, INSPECT)
    (tmp_path / "run.png").write_bytes(page.screenshot_png)
    assert page.console_errors == []
    assert page.requests == [html.resolve().as_uri()]  # the page itself, nothing else
    assert page.screenshot_png.startswith(b"\x89PNG") and len(page.screenshot_png) > 20_000
    seen = json.loads(page.evaluated)
    [timeline] = seen["timelines"]
    assert timeline["id"] == "timeline-tidy_pg" and timeline["verdict"] == "pass"
    assert timeline["calls"] == sum(1 for e in events if e["kind"] == "op")
    assert timeline["failed_calls"] == sum(1 for e in events if e["kind"] == "op" and e["status"] == "fail")
    assert len(timeline["fault_windows"]) == 1 and timeline["fault_windows"][0] > 50
    assert timeline["bands"] == ["pg"] and "CLOSED" in timeline["band_states"]
    assert timeline["phases"] == PHASES
    assert timeline["resources"] == ["fds", "tcp_connections", "rss_bytes"] and timeline["workload_lines"] >= 3
    assert timeline["rendered_width"] > 500
    assert seen["trend_rows"] == 1 and seen["flaky"] and seen["regressions"]


def test_lab_report_draws_the_newest_run_of_every_stored_scenario(chaos_stack, tmp_path):
    browser = _browser()
    for leaky in (False, True, False):
        _run(chaos_stack, tmp_path, leaky)
    html = tmp_path / "report.html"
    written = chaos_stack.run("report", "--history", str(tmp_path / "history.sqlite"), "-o", str(html))
    assert "2 timelines" in written.stdout
    page = open_page(browser, html, INSPECT)
    (tmp_path / "report.png").write_bytes(page.screenshot_png)
    assert page.console_errors == [] and page.requests == [html.resolve().as_uri()]
    seen = json.loads(page.evaluated)
    assert {t["id"]: t["verdict"] for t in seen["timelines"]} == {"timeline-leaky_pg": "fail",
                                                                  "timeline-tidy_pg": "pass"}
    assert all(t["calls"] > 50 and t["phases"] == PHASES and len(t["fault_windows"]) == 1
               for t in seen["timelines"])
    assert seen["trend_rows"] == 2
