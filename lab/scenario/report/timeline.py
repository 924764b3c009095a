"""One scenario run drawn as an SVG timeline, from its recorded events (History.to_json()).

From top to bottom, on one time axis:

* every call as a point, latency (log scale) against the time it ended, coloured by outcome
  (ok, failed, cancelled or hung), one shape per target (pg a circle, kafka a square);
* the breaker state of each target as a band (CLOSED / OPEN / HALF_OPEN), from its transitions;
* resource samples: open fds, TCP connections and RSS of the workload and each stack component;
* across all of them: the fault window shaded, and every phase's start marked and named.
"""

from __future__ import annotations

from typing import Any

from .svg import Linear, Log10, esc, polyline, seconds_label, x_axis, y_axis

WIDTH_PX = 1000
LEFT_PX, RIGHT_PX = 90, 20
CALLS_PX = 220
BAND_PX = 16
CHART_PX = 70
GAP_S = 1.0  # no resource sample of a process for this long: it was down
OUTCOME_COLOURS = {"ok": "#2e8b57", "fail": "#d62728", "unknown": "#ff8c00"}
STATE_COLOURS = {"CLOSED": "#8fd19e", "OPEN": "#f08080", "HALF_OPEN": "#ffd27f"}
PROCESS_COLOURS = {"workload": "#1f77b4", "proxy": "#9467bd", "postgres": "#2ca02c", "kafka": "#8c564b"}
RESOURCE_CHARTS = (("fds", "open fds", 1.0), ("tcp_connections", "TCP conns", 1.0),
                   ("rss_bytes", "RSS MiB", 1 / 2**20))  # each on a log scale of 1 + value: a workload's
# dozen fds and a Postgres tree's hundreds both show their changes


def _phases(events: list[dict[str, Any]], end_s: float) -> list[tuple[str, float, float]]:
    starts = [(e["name"], e["t"]) for e in events if e["kind"] == "phase" and e.get("edge") == "start"]
    ends = {e["name"]: e["t"] for e in events if e["kind"] == "phase" and e.get("edge") == "end"}
    return [(name, start, ends.get(name, end_s)) for name, start in starts]


def _who(event: dict[str, Any]) -> Any:
    """Whose event it is: a breaker's component, a call's lane (the lab's clients name their lanes after the
    components); ``target`` in journals written before that split."""
    return event.get("component") or event.get("lane") or event.get("target")


def _bands(events: list[dict[str, Any]], target: str, end_s: float) -> list[tuple[str, float, float]]:
    """(state, from, to) of ``target``'s breaker; CLOSED until its first transition."""
    transitions = [e for e in events if e["kind"] == "breaker" and _who(e) == target]
    bands, state, since = [], str(transitions[0].get("from", "CLOSED")) if transitions else "CLOSED", 0.0
    for event in transitions:
        bands.append((state, since, event["t"]))
        state, since = str(event.get("to")), event["t"]
    bands.append((state, since, end_s))
    return [band for band in bands if band[2] > band[1]]


def _unbroken(samples: list[dict[str, Any]], gap_s: float = GAP_S) -> list[list[dict[str, Any]]]:
    """Samples split where none came for ``gap_s`` (the process was down): no line drawn across a gap."""
    runs: list[list[dict[str, Any]]] = []
    for sample in samples:
        if not runs or sample["t"] - runs[-1][-1]["t"] > gap_s:
            runs.append([])
        runs[-1].append(sample)
    return runs


def _call(event: dict[str, Any], x: float, y: float) -> str:
    colour = OUTCOME_COLOURS.get(event["status"], "#777")
    outcome = event["status"] if event["status"] != "unknown" else str(event.get("error_class", "unknown")).lower()
    tip = (f"{event.get('target')} {outcome} at {event['t']:.3f}s, {event.get('latency_s', 0) * 1000:.1f} ms"
           + (f": {event.get('error_class')}" if event.get("error_class") else ""))
    css = f"call {event['status']} {esc(event.get('target'))}"
    if _who(event) == "kafka":
        return (f'<rect class="{css}" x="{x - 2.5:.1f}" y="{y - 2.5:.1f}" width="5" height="5" fill="{colour}">'
                f'<title>{esc(tip)}</title></rect>')
    return f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>{esc(tip)}</title></circle>'


def render(events: list[dict[str, Any]]) -> str:
    """The timeline of one run as an ``<svg class="timeline">`` element."""
    end_s = max((e["t"] for e in events), default=1.0) or 1.0
    x = Linear(0.0, end_s, LEFT_PX, WIDTH_PX - RIGHT_PX)
    plot_w = WIDTH_PX - RIGHT_PX - LEFT_PX
    calls = [e for e in events if e["kind"] == "op"]
    targets = sorted({str(_who(e)) for e in calls} | {str(_who(e)) for e in events
                                                               if e["kind"] == "breaker"})
    processes = sorted({str(e.get("process")) for e in events if e["kind"] == "resource"},
                       key=lambda p: list(PROCESS_COLOURS).index(p) if p in PROCESS_COLOURS else 99)
    top = 30
    calls_top, calls_bottom = top, top + CALLS_PX
    bands_top = calls_bottom + 10
    charts_top = bands_top + len(targets) * (BAND_PX + 4) + 10
    charts_bottom = charts_top + (len(RESOURCE_CHARTS) * (CHART_PX + 12) if processes else 0)
    height = charts_bottom + 40
    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{height}" '
           f'viewBox="0 0 {WIDTH_PX} {height}" role="img">']
    for name, start, stop in _phases(events, end_s):  # fault window shaded, behind everything
        if name == "fault":
            out.append(f'<rect class="fault-window" x="{x(start):.1f}" y="{top}" width="{x(stop) - x(start):.1f}" '
                       f'height="{charts_bottom - top}"><title>fault {start:.2f}s - {stop:.2f}s</title></rect>')
    latencies = [max(float(e.get("latency_s", 0.0)), 1e-4) for e in calls]
    y = Log10(1e-3 if not latencies else min(1e-3, min(latencies)), max([1.0, *latencies]), calls_bottom, calls_top)
    out.append(y_axis([(y(t), seconds_label(t)) for t in y.ticks()], LEFT_PX, plot_w))
    out.append(f'<text class="axis-label" x="4" y="{calls_top + 10}">latency</text>')
    out.append('<g class="calls">')
    out += [_call(e, x(e["t"]), y(max(float(e.get("latency_s", 0.0)), 1e-4))) for e in calls]
    out.append("</g>")
    for index, target in enumerate(targets):
        band_y = bands_top + index * (BAND_PX + 4)
        out.append(f'<g class="breaker-band" data-target="{esc(target)}">'
                   f'<text class="tick-label" x="{LEFT_PX - 4}" y="{band_y + 12}" text-anchor="end">'
                   f'{esc(target)} breaker</text>')
        for state, start, stop in _bands(events, target, end_s):
            out.append(f'<rect class="state {esc(state)}" x="{x(start):.1f}" y="{band_y}" '
                       f'width="{max(x(stop) - x(start), 0.5):.1f}" height="{BAND_PX}" '
                       f'fill="{STATE_COLOURS.get(state, "#ccc")}"><title>{esc(target)} {esc(state)} '
                       f'{start:.2f}s - {stop:.2f}s</title></rect>')
        out.append("</g>")
    for index, (field, label, factor) in enumerate(RESOURCE_CHARTS if processes else ()):
        chart_top = charts_top + index * (CHART_PX + 12)
        samples = [e for e in events if e["kind"] == "resource"]
        peak = max((1 + float(e.get(field, 0)) * factor for e in samples), default=10.0)
        log_y = Log10(1.0, max(peak * 1.2, 10.0), chart_top + CHART_PX, chart_top)

        def cy(value: float, log_y: Log10 = log_y) -> float:
            return log_y(1 + value)

        out.append(f'<g class="resources" data-field="{field}">')
        ticks = [t for t in (0, 10, 100, 1000, 10000) if 1 + t <= log_y.high]
        out.append(y_axis([(cy(t), f"{t:g}") for t in ticks], LEFT_PX, plot_w))
        out.append(f'<text class="axis-label" x="4" y="{chart_top + 10}">{esc(label)}</text>')
        for process in processes:
            for run in _unbroken([e for e in samples if e.get("process") == process]):
                points = [(x(e["t"]), cy(float(e.get(field, 0)) * factor)) for e in run]
                out.append(polyline(points, f"resource {process}", PROCESS_COLOURS.get(process, "#555")))
        out.append("</g>")
    for index, (name, start, _) in enumerate(_phases(events, end_s)):
        label_y = top - 10 + (index % 2) * 10  # staggered: short phases (heal) sit next to the next one
        out.append(f'<line class="phase" data-phase="{esc(name)}" x1="{x(start):.1f}" x2="{x(start):.1f}" '
                   f'y1="{top - 18}" y2="{charts_bottom}"/><text class="phase-label" x="{x(start) + 2:.1f}" '
                   f'y="{label_y}">{esc(name)}</text>')
    out.append(x_axis(x, charts_bottom + 4))
    out.append("</svg>")
    return "".join(out)


def legend(processes: tuple[str, ...] = tuple(PROCESS_COLOURS)) -> str:
    """The key shared by every timeline (HTML)."""
    items = [f'<span class="key" style="background:{c}"></span>{esc(n)} call' for n, c in OUTCOME_COLOURS.items()]
    items += [f'<span class="key" style="background:{c}"></span>{esc(n)}' for n, c in STATE_COLOURS.items()]
    items += [f'<span class="key line" style="background:{PROCESS_COLOURS[p]}"></span>{esc(p)}' for p in processes]
    items.append('<span class="key fault"></span>fault window')
    return ('<p class="legend">' + " ".join(items) + " &middot; pg calls are circles, kafka calls squares; latency on "
            "a log scale; unknown = cancelled or hung</p>")
