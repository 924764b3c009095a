"""Per-phase HTTP figures (requests/s, p50/p95/p99, error rate) for the journal and the HTML report.

Both read them from the one place the HTTP target records them, its ``http.phases`` probe
(``lab.scenario.http_target``), so the journal's ``http_phases`` and the report's table are the same
numbers. A run without that probe (not an HTTP target, or stopped before its probes) has none: ``None``,
and no table, rather than figures made up from part of a run.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .svg import esc

PROBE = "http.phases"
COLUMNS = (("requests", "requests", "{:d}"), ("rps", "requests/s", "{:.1f}"), ("p50_ms", "p50 ms", "{:.1f}"),
           ("p95_ms", "p95 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"), ("error_rate", "errors", "{:.1%}"))


def phase_figures(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """The figures of each phase, in phase order, from a run's events (``History.to_json()``); None without them."""
    for event in events:
        if event.get("kind") == "probe" and event.get("name") == PROBE and isinstance(event.get("phases"), dict):
            return dict(event["phases"])
    return None


def table(figures: Mapping[str, Mapping[str, Any]]) -> str:
    """An HTML table: one row per phase, one column per figure."""
    head = "".join(f"<th>{esc(title)}</th>" for _, title, _ in COLUMNS)
    rows = "".join(f'<tr data-phase="{esc(phase)}"><td>{esc(phase)}</td>'
                   + "".join(f'<td class="{key}">{esc(_format(values.get(key), form))}</td>'
                             for key, _, form in COLUMNS) + "</tr>"
                   for phase, values in figures.items())
    return f'<table class="http-phases"><tr><th>phase</th>{head}</tr>{rows}</table>'


def _format(value: Any, form: str) -> str:
    if value is None:
        return "-"
    try:
        return form.format(value)
    except (TypeError, ValueError):
        return str(value)
