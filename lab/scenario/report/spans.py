"""A run's history as OpenTelemetry spans, written as an OTLP/JSON file (``lab run --spans out.json``).

Why a file and not an exporter: any OTLP-capable backend or viewer (Jaeger,
Tempo, the OpenTelemetry Collector's ``otlpjsonfile`` receiver) can load it, and
writing it needs neither the SDK nor a network. The format is OTLP's JSON
encoding of ``ExportTraceServiceRequest`` (ids as hex, times as decimal strings
of Unix nanoseconds, kinds and status codes as numbers).

Each scenario run is one trace:

    scenario <name>            root, the whole run; status ERROR unless the verdict is pass;
                               breaker transitions are its events
      phase <name>             baseline, fault, heal, recovery, final ...
        fault <key>            inject to heal, under the phase it was injected in
        call <lane>            one workload operation, under the phase it started in;
                               status ERROR if it failed; ``lab.outcome`` ok | fail | unknown

The clients' own spans (pool acquire, query, send, consume), where OpenTelemetry's
SDK is installed and the run captured them (client_spans.py), follow in a second
scope, ``lab.clients``: their own traces, one per message from its send span to
the consume span of each read of it (the send's context travels in the record's
``traceparent`` header).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from ..history import FAIL, History

INTERNAL, CLIENT = 1, 3  # OTLP SpanKind
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            typed: dict[str, Any] = {"boolValue": value}
        elif isinstance(value, int):
            typed = {"intValue": str(value)}
        elif isinstance(value, float):
            typed = {"doubleValue": value}
        else:
            typed = {"stringValue": str(value)}
        out.append({"key": key, "value": typed})
    return out


class _Trace:
    """The spans of one scenario run, on one clock: seconds since the run started, anchored in Unix time."""

    def __init__(self, started_unix_ns: int) -> None:
        self.trace_id = os.urandom(16).hex()
        self.started_unix_ns = started_unix_ns
        self.spans: list[dict[str, Any]] = []

    def ns(self, t: float) -> str:
        return str(self.started_unix_ns + round(t * 1e9))

    def span(self, name: str, start: float, end: float, parent: str | None, kind: int = INTERNAL,
             attributes: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
        span: dict[str, Any] = {
            "traceId": self.trace_id, "spanId": os.urandom(8).hex(), "name": name, "kind": kind,
            "startTimeUnixNano": self.ns(start), "endTimeUnixNano": self.ns(max(start, end)),
            "attributes": _attributes(attributes or {}),
            "status": {"code": STATUS_ERROR, "message": error} if error is not None else {"code": STATUS_UNSET},
        }
        if parent is not None:
            span["parentSpanId"] = parent
        self.spans.append(span)
        return span


def _phase_at(phases: list[tuple[float, float, str]], t: float, root: str) -> str:
    for start, end, span_id in phases:
        if start <= t <= end:
            return span_id
    return root


def scenario_spans(result: Any) -> list[dict[str, Any]]:
    """The spans of one scenario result (a ScenarioResult: its name, target, verdict and History)."""
    history: History = result.history
    end = max([e.t for e in history.events] + [float(e.get("ended") or 0.0) for e in history.of("op")],
              default=0.0)
    started_unix_ns = getattr(history, "started_unix_ns", None) or time.time_ns() - round(end * 1e9)
    trace = _Trace(started_unix_ns)
    verdict = getattr(result, "verdict", None)
    root = trace.span(f"scenario {result.scenario}", 0.0, end, None, attributes={
        "lab.scenario": result.scenario, "lab.target": getattr(result, "target", None), "lab.verdict": verdict,
        "lab.negative_control": getattr(result, "negative_control", None),
        "lab.mutant": getattr(result, "mutant", None)},
        error=None if verdict == "pass" else f"verdict: {verdict}")
    root_id = root["spanId"]
    root["events"] = [{"timeUnixNano": trace.ns(e.t), "name": f"breaker {e.get('from')} -> {e.get('to')}",
                       "attributes": _attributes({"lab.component": e.get("component"), "lab.breaker": e.get("breaker"),
                                                  "lab.reason": e.get("reason")})}
                      for e in history.of("breaker")]
    phases = []
    for event in history.of("phase", edge="start"):
        name = event.get("name")
        window = history.phase(name)
        if window is not None:
            span = trace.span(f"phase {name}", window[0], window[1], root_id, attributes={"lab.phase": name})
            phases.append((window[0], window[1], span["spanId"]))
    for inject in history.of("fault", edge="inject"):
        key = inject.get("name")
        heal = next((e for e in history.of("fault", name=key, edge="heal") if e.t >= inject.t), None)
        trace.span(f"fault {key}", inject.t, heal.t if heal is not None else end, _phase_at(phases, inject.t, root_id),
                   attributes={"lab.fault": key, "lab.fault.description": inject.get("fault"),
                               "lab.healed": heal is not None})
    for op in history.of("op"):
        started = float(op.get("started", op.t))
        ended = float(op.get("ended", op.t))
        details = {f"lab.{k}": v for k, v in op.details.items() if k not in ("started", "ended", "latency_s")
                   and isinstance(v, (str, int, float, bool))}
        details["lab.outcome"] = op.status
        trace.span(f"call {op.get('lane')}", started, ended, _phase_at(phases, started, root_id), CLIENT, details,
                   error=(op.get("error_class") or "failed") if op.status == FAIL else None)
    return trace.spans


def otlp_json(results: Iterable[Any], service_name: str = "chaoslab",
              client_spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An OTLP/JSON ExportTraceServiceRequest of every result's spans (one trace per scenario run), and the
    clients' spans (already in OTLP/JSON, client_spans.otlp_spans) in a scope of their own if there are any."""
    import lab

    spans = [span for result in results for span in scenario_spans(result)]
    scopes = [{"scope": {"name": "lab.scenario", "version": lab.__version__}, "spans": spans}]
    if client_spans:
        scopes.append({"scope": {"name": "lab.clients", "version": lab.__version__}, "spans": client_spans})
    return {"resourceSpans": [{
        "resource": {"attributes": _attributes({"service.name": service_name})},
        "scopeSpans": scopes,
    }]}


def write_spans(path: Path, results: list[Any], client_spans: list[dict[str, Any]] | None = None) -> int:
    """Write the OTLP/JSON file; how many spans it holds (the clients' included)."""
    document = otlp_json(results, client_spans=client_spans)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return sum(len(scope["spans"]) for scope in document["resourceSpans"][0]["scopeSpans"])


__all__ = ["otlp_json", "scenario_spans", "write_spans"]
