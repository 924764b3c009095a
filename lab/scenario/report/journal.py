"""The JSON journal: versions, host, phases, faults, events, verdicts and measurements of every scenario."""

from __future__ import annotations

import json
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ...proxy.api import VERSION as TOXIPROXY_API
from .http_phases import phase_figures


def _phases(result: Any) -> list[dict[str, Any]]:
    phases = []
    for event in result.history.of("phase", edge="start"):
        window = result.history.phase(event.get("name"))
        phases.append({"name": event.get("name"), "start": round(window[0], 4), "end": round(window[1], 4)})
    return phases


def journal(results: list[Any], backend: str) -> dict[str, Any]:
    import lab

    return {
        "chaoslab": lab.__version__,
        "python": sys.version.split()[0],
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "backend": backend,
        "toxiproxy_api": TOXIPROXY_API,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenarios": [{
            "name": r.scenario,
            "negative_control": r.negative_control,
            "target": getattr(r, "target", None),
            "verdict": r.verdict,
            "duration_s": round(r.duration_s, 3),
            "measurements": r.measurements,
            "phases": _phases(r),
            "http_phases": phase_figures(r.history.to_json()),  # per-phase req/s, p50/p95/p99, errors; None: no HTTP
            "faults": r.faults,
            "fault_events": [e for e in r.history.to_json() if e["kind"] == "fault"],
            "verdicts": [{"check": v.check, "result": v.result, "evidence": v.evidence} for v in r.verdicts],
            "error": r.error,
            "events": r.history.to_json(),
        } for r in results],
    }


def write_journal(path: Path, results: list[Any], backend: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(journal(results, backend), indent=1))
