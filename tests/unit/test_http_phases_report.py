"""Per-phase HTTP figures reach the JSON journal (``http_phases``) and the HTML report (a table per run), the
same numbers in both, read from the HTTP target's ``http.phases`` probe; a run without it shows none."""

from __future__ import annotations

import json
import types
from xml.etree import ElementTree as ET

import pytest

from lab.scenario.history import OK, History
from lab.scenario.http_checks import phase_figures as figures_of_history
from lab.scenario.report.html import Case, render
from lab.scenario.report.journal import journal

pytestmark = pytest.mark.unit

PHASES = [("baseline", 0.0, 1.0), ("fault", 1.0, 3.0), ("heal", 3.0, 3.1), ("recovery", 3.1, 4.0),
          ("final", 4.0, 5.0)]


def http_history() -> History:
    """100 fast requests/s in the baseline, 50 slow errors/s in the fault, probe recorded as HttpTarget does."""
    history = History()
    history.started = 0.0
    for name, start, end in PHASES:
        history.add("phase", t=start, name=name, edge="start")
        history.add("phase", t=end, name=name, edge="end")
    for i in range(100):
        history.add("op", OK, t=i / 100 + 0.005, lane="http", latency_s=0.002 + i * 0.0001, status_code=200)
    for i in range(100):
        history.add("op", "fail", t=1 + i / 50 + 0.01, lane="http", latency_s=0.4, status_code=503,
                    error_class="HTTP 503")
    history.add("probe", OK, t=5.0, name="http.phases", phases=figures_of_history(history))
    return history


def result(history: History) -> types.SimpleNamespace:
    return types.SimpleNamespace(scenario="blackhole", negative_control=False, target="http GET x", verdict="pass",
                                 duration_s=5.0, measurements={}, faults=[], verdicts=[], error=None,
                                 history=history)


def test_the_journal_holds_each_phases_figures():
    scenario = json.loads(json.dumps(journal([result(http_history())], "local")))["scenarios"][0]
    phases = scenario["http_phases"]
    assert list(phases) == ["baseline", "fault", "heal", "recovery", "final"]
    assert phases["baseline"]["requests"] == 100 and phases["baseline"]["rps"] == pytest.approx(100)
    assert phases["baseline"]["error_rate"] == 0 and phases["baseline"]["p50_ms"] == pytest.approx(7.0, abs=0.2)
    assert phases["fault"]["rps"] == pytest.approx(50) and phases["fault"]["error_rate"] == 1.0
    assert phases["fault"]["p99_ms"] == pytest.approx(400)


def test_a_run_without_an_http_target_has_no_figures():
    assert journal([result(History())], "local")["scenarios"][0]["http_phases"] is None
    page = render([Case("blackhole", "run 1", "pass", 1.0, [], History().to_json())], {}, "t")
    assert "http-phases" not in page


def test_the_html_report_draws_a_table_of_the_same_figures():
    events = http_history().to_json()
    page = render([Case("blackhole", "run 1", "pass", 5.0, [], events)], {}, "t")
    start = page.index('<table class="http-phases">')
    table = ET.fromstring(page[start:page.index("</table>", start) + len("</table>")])
    rows = {row.get("data-phase"): {td.get("class"): td.text for td in row.findall("td")}
            for row in table.findall("tr")[1:]}
    assert list(rows) == ["baseline", "fault", "heal", "recovery", "final"]
    assert rows["baseline"]["requests"] == "100" and rows["baseline"]["rps"] == "100.0"
    assert rows["fault"]["error_rate"] == "100.0%" and rows["fault"]["p99_ms"] == "400.0"
    assert rows["baseline"]["error_rate"] == "0.0%"


def test_lab_report_draws_a_journals_runs_with_their_http_figures(tmp_path, capsys):
    from lab.cli import main
    from lab.scenario.report.journal import write_journal

    journal_path, page_path = tmp_path / "journal.json", tmp_path / "report.html"
    write_journal(journal_path, [result(http_history())], "local")
    assert main(["report", "--journal", str(journal_path), "-o", str(page_path)]) == 0
    page = page_path.read_text()
    assert "blackhole" in page and "run 1 against http GET x" in page
    assert page.count("<tr data-phase=") == 5 and '<td class="error_rate">100.0%</td>' in page


@pytest.mark.parametrize("text, named", [
    ("{", "is not a JSON journal"),
    ("[]", 'has no "scenarios" list'),
    ('{"scenarios": [{"name": "x"}]}', "scenario #1 has no 'verdict'"),
    ('{"scenarios": [{"name": "x", "verdict": "pass", "duration_s": "soon", "verdicts": [], "events": []}]}',
     "scenario #1 is malformed"),
])
def test_lab_report_names_what_is_wrong_with_a_journal(tmp_path, capsys, text, named):
    from lab.cli import main

    path = tmp_path / "journal.json"
    path.write_text(text)
    assert main(["report", "--journal", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert f"journal {path}: " in err and named in err, err
    assert main(["report", "--journal", str(tmp_path / "none.json")]) == 2
    assert "none.json: cannot be read" in capsys.readouterr().err
