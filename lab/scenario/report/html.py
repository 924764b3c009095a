"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched) to look at.

Sections: a summary of the runs shown; per scenario run its timeline (lab/scenario/report/timeline.py)
and its checks; trends across the stored runs (pass/fail per run, detection and recovery times); the
flaky and regression tables (lab/scenario/trends.py). A Content-Security-Policy of ``default-src
'none'`` guarantees the page loads nothing from anywhere: it renders the same offline.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

from .. import trends
from ..store import RunStore, StoredResult
from . import http_phases, timeline
from .svg import Linear, esc, polyline, y_axis

TREND_RUNS = 50
TREND_METRICS = {"pg_detection_s": "#1f77b4", "kafka_detection_s": "#8c564b", "pg_recovery_s": "#2ca02c",
                 "kafka_recovery_s": "#9467bd", "recovery_s": "#7f7f7f"}
STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;max-width:1060px}
h1{font-size:1.4em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin:1.4em 0 .3em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;
vertical-align:top}th{background:#f4f4f4}
.pass{color:#2e8b57;font-weight:bold}.fail{color:#d62728;font-weight:bold}.unknown{color:#ff8c00;font-weight:bold}
svg text{font:10px system-ui,sans-serif;fill:#444}.axis,.tick{stroke:#888}.grid{stroke:#eee}
.fault-window{fill:#d62728;fill-opacity:.10}.phase{stroke:#555;stroke-dasharray:3 3}
.phase-label{font-weight:bold}polyline{stroke-width:1.5}
.key{display:inline-block;width:10px;height:10px;margin:0 3px 0 10px}.key.line{height:3px}
.key.fault{background:#d62728;opacity:.2}td.evidence{font-size:12px;color:#555}
"""


@dataclasses.dataclass(frozen=True)
class Case:
    """One scenario run to draw."""

    scenario: str
    label: str
    verdict: str
    duration_s: float
    checks: list[tuple[str, str, str]]  # (check, verdict, evidence)
    events: list[dict[str, Any]]


def cases_from_results(results: Sequence[Any]) -> list[Case]:
    """From this process's ScenarioResults (``lab run --html``)."""
    counts: dict[str, int] = {}
    cases = []
    for result in results:
        counts[result.scenario] = counts.get(result.scenario, 0) + 1
        label = (f"run {counts[result.scenario]}" + (" (negative control)" if result.negative_control else "")
                 + (f" (mutant {result.mutant})" if getattr(result, "mutant", None) else ""))
        cases.append(Case(result.scenario, label, result.verdict, result.duration_s,
                          [(v.check, v.result, v.evidence) for v in result.verdicts], result.history.to_json()))
    return cases


def cases_from_store(store: RunStore, by_scenario: dict[str, list[StoredResult]]) -> list[Case]:
    """The newest stored result of each scenario that has a timeline (``lab report``)."""
    cases = []
    for name, results in sorted(by_scenario.items()):
        for stored in reversed(results):
            events = store.timeline(stored.result_id)
            if events is None:
                continue
            when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(stored.recorded_at))
            cases.append(Case(name, f"newest stored run (#{stored.run_id}, {when})", stored.verdict,
                              stored.metrics.get("duration_s", 0.0), store.checks(stored.result_id), events))
            break
    return cases


def _verdict(verdict: str) -> str:
    return f'<span class="{esc(verdict)}">{esc(verdict.upper())}</span>'


def _anchors(cases: Sequence[Case]) -> list[str]:
    """One unique id per drawn run: ``timeline-<scenario>``, then ``timeline-<scenario>-2`` and on."""
    seen: dict[str, int] = {}
    anchors = []
    for case in cases:
        seen[case.scenario] = seen.get(case.scenario, 0) + 1
        anchors.append(f"timeline-{case.scenario}" + (f"-{seen[case.scenario]}" if seen[case.scenario] > 1 else ""))
    return anchors


def _case(case: Case, anchor: str) -> str:
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{_verdict(result)}</td><td class=\"evidence\">{esc(evidence)}"
                   f"</td></tr>" for name, result, evidence in case.checks)
    figures = http_phases.phase_figures(case.events)
    http = "" if figures is None else f"<h4>HTTP load per phase</h4>{http_phases.table(figures)}"
    return (f'<section class="scenario" id="{esc(anchor)}" data-verdict="{esc(case.verdict)}">'
            f"<h3>{esc(case.scenario)} &middot; {esc(case.label)} &middot; {_verdict(case.verdict)} &middot; "
            f"{case.duration_s:.1f} s</h3>{timeline.render(case.events)}{http}"
            f"<details><summary>checks</summary><table class=\"checks\"><tr><th>check</th><th>verdict</th>"
            f"<th>evidence</th></tr>{rows}</table></details></section>")


def _trend_chart(results: Sequence[StoredResult]) -> str:
    """Per run (oldest left): its verdict as a coloured cell, and detection/recovery times as lines."""
    shown = list(results)[-TREND_RUNS:]
    width, left, top, chart_px = 640, 60, 24, 90
    step = (width - left - 10) / max(len(shown), 1)

    def x(i: int) -> float:
        return left + (i + 0.5) * step

    out = [f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + chart_px + 30}">',
           '<text x="4" y="16">verdict</text>']
    for index, result in enumerate(shown):
        colour = timeline.OUTCOME_COLOURS["ok" if result.verdict == "pass" else
                                          "fail" if result.verdict == "fail" else "unknown"]
        out.append(f'<rect class="run {esc(result.verdict)}" x="{left + index * step:.1f}" y="6" '
                   f'width="{max(step - 1, 1):.1f}" height="12" fill="{colour}"><title>run #{result.run_id}: '
                   f'{esc(result.verdict)}</title></rect>')
    values = [r.metrics[m] for r in shown for m in TREND_METRICS if m in r.metrics]
    y = Linear(0.0, max(values, default=1.0) * 1.1 or 1.0, top + chart_px, top + 6)
    out.append(y_axis([(y(t), f"{t:g} s") for t in y.ticks(3)], left, width - left - 10))
    for metric, colour in TREND_METRICS.items():
        points = [(x(i), y(r.metrics[metric])) for i, r in enumerate(shown) if metric in r.metrics]
        out.append(polyline(points, f"metric {metric}", colour))
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2" fill="{colour}"/>' for px, py in points]
    out.append(f'<text x="{left}" y="{top + chart_px + 20}">oldest &#8594; newest ({len(shown)} of '
               f'{len(results)} runs)</text></svg>')
    return "".join(out)


def _trends(by_scenario: dict[str, list[StoredResult]], report: dict[str, trends.Trend]) -> str:
    key = " ".join(f'<span class="key line" style="background:{c}"></span>{esc(m)}' for m, c in TREND_METRICS.items())
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{t.runs}</td><td>{t.pass_rate:.0%}</td>"
                   f"<td>{_trend_chart(by_scenario[name])}</td></tr>" for name, t in sorted(report.items()))
    return (f'<section id="trends"><h2>Trends across stored runs</h2><p class="legend">{key}</p>'
            f'<table class="trends"><tr><th>scenario</th><th>runs</th><th>pass rate</th>'
            f'<th>verdict per run; detection and recovery times</th></tr>{rows}</table></section>')


def _flaky(report: dict[str, trends.Trend]) -> str:
    rows = "".join(f"<tr><td>{esc(n)}</td><td>{t.runs}</td><td>{t.pass_rate:.0%}</td><td>{esc(t.flaky)}</td></tr>"
                   for n, t in sorted(report.items()) if t.flaky)
    return ('<section><h2>Flaky scenarios</h2><table id="flaky"><tr><th>scenario</th><th>runs</th><th>pass rate</th>'
            f'<th>why</th></tr>{rows or "<tr><td colspan=4>none</td></tr>"}</table></section>')


def _regressions(report: dict[str, trends.Trend]) -> str:
    rows = "".join(f"<tr><td>{esc(n)}</td><td>{esc(r.metric)}</td><td>{r.value:.3f} s</td><td>{r.baseline:.3f} s"
                   f"</td><td>{r.allowed:.3f} s</td></tr>" for n, t in sorted(report.items()) for r in t.regressions)
    return ('<section><h2>Regressions (newest passing run against its baseline)</h2><table id="regressions"><tr>'
            '<th>scenario</th><th>metric</th><th>newest</th><th>baseline</th><th>allowed</th></tr>'
            f'{rows or "<tr><td colspan=5>none</td></tr>"}</table></section>')


def render(cases: Sequence[Case], by_scenario: dict[str, list[StoredResult]], title: str) -> str:
    report = {name: trends.trend(name, results) for name, results in by_scenario.items()}
    anchors = _anchors(cases)
    summary = "".join(f'<tr><td><a href="#{esc(a)}">{esc(c.scenario)}</a></td><td>{esc(c.label)}'
                      f'</td><td>{_verdict(c.verdict)}</td><td>{c.duration_s:.1f} s</td></tr>'
                      for c, a in zip(cases, anchors))
    written = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>written {written}</p>"
        f'<table id="summary"><tr><th>scenario</th><th>run</th><th>verdict</th><th>duration</th></tr>{summary}</table>'
        f'<h2>Timelines</h2>{timeline.legend()}'
        f'<div id="timelines">{"".join(_case(c, a) for c, a in zip(cases, anchors))}</div>'
        f"{_trends(by_scenario, report)}{_flaky(report)}{_regressions(report)}</body></html>")


def write_html(path: Path, cases: Sequence[Case], by_scenario: dict[str, list[StoredResult]],
               title: str = "chaoslab report") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(cases, by_scenario, title), encoding="utf-8")


def stored(store: RunStore) -> dict[str, list[StoredResult]]:
    """Every stored result of the resilient target, by scenario, oldest first."""
    by_scenario: dict[str, list[StoredResult]] = {}
    for result in store.results():
        by_scenario.setdefault(result.scenario, []).append(result)
    return by_scenario
