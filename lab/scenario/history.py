"""The recorded history of a run: every operation, breaker transition, phase, fault and probe.

Checks read nothing else, so a verdict can be recomputed from a saved journal.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclasses.dataclass(frozen=True)
class Event:
    t: float  # seconds since the run started
    kind: str  # op | breaker | phase | fault | probe
    status: str = OK  # ok | fail | unknown
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.details.get(key, default)


class History:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.started_unix_ns = time.time_ns()  # where t = 0 is in Unix time (for exported spans)
        self.events: list[Event] = []

    def now(self) -> float:
        return float(self._clock() - self.started)

    def add(self, kind: str, status: str = OK, t: float | None = None, **details: Any) -> Event:
        event = Event(self.now() if t is None else t, kind, status, details)
        self.events.append(event)
        return event

    def of(self, kind: str, **match: Any) -> Iterator[Event]:
        for event in self.events:
            if event.kind == kind and all(event.details.get(k) == v for k, v in match.items()):
                yield event

    def phase(self, name: str) -> tuple[float, float] | None:
        """(start, end) of a phase."""
        start = next((e.t for e in self.of("phase", name=name, edge="start")), None)
        end = next((e.t for e in self.of("phase", name=name, edge="end")), None)
        if start is None:
            return None
        return start, end if end is not None else self.now()

    def probe(self, name: str) -> Event | None:
        return next(iter(reversed([e for e in self.of("probe", name=name)])), None)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"t": round(e.t, 6), "kind": e.kind, "status": e.status, **_jsonable(e.details)} for e in self.events]


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in details.items():
        out[key] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else repr(value)
    return out
